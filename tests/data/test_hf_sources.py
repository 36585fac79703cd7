"""Hugging Face datasets as sources (data/sources/hf.py): each published column layout, written with
`datasets` itself (parquet with embedded image bytes, and save_to_disk), read into the same records as the
JSON + image-folder files of the same items.

Compared with: the JSON readers on the official VQAv2 files of the same items (records, then `data build`'s
pairs and a tiny model's `eval run` scores, equal), and the image bytes `datasets` stored (what we write out).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

datasets = pytest.importorskip("datasets")  # a test dependency (pyproject [test]); never skipped under make test

from symdpo.data.errors import DataError  # noqa: E402
from symdpo.data.sources import read_vqa  # noqa: E402
from symdpo.data.sources.hf import read_hf  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
QUESTIONS = ["what color is the square?", "is there a circle?", "what shape is it?"]
ANSWERS = [["red", "blue", "green"], ["yes", "no"], ["circle", "square"]]


def jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    buf = io.BytesIO()
    Image.new("RGB", (40, 32), tuple(rng.randrange(256) for _ in range(3))).save(buf, "JPEG")
    return buf.getvalue()


def vqa_items(first_image: int, n_images: int) -> list[dict]:
    """Return VQAv2 rows as lmms-lab/VQAv2 holds them (answers as objects, image bytes)."""
    rows = []
    for k in range(n_images):
        image_id = first_image + k
        for j, (q, answers) in enumerate(zip(QUESTIONS, ANSWERS, strict=True)):
            answer = answers[(k + j) % len(answers)]
            rows.append({"question_id": image_id * 10 + j, "question": q, "image_id": image_id,
                         "question_type": q.split()[0], "answer_type": "yes/no" if j == 1 else "other",
                         "multiple_choice_answer": answer,
                         "answers": [{"answer": answer if i < 7 else answers[0], "answer_confidence": "yes",
                                      "answer_id": i + 1} for i in range(10)],
                         "image": {"bytes": jpeg(image_id), "path": None}})
    return rows


def write_hf(rows: list[dict], path: Path, form: str) -> Path:
    """Write ``rows`` with `datasets` as parquet (embedded images) or a save_to_disk folder; return the path."""
    features = datasets.Features({
        "question_id": datasets.Value("int64"), "question": datasets.Value("string"),
        "image_id": datasets.Value("int64"), "question_type": datasets.Value("string"),
        "answer_type": datasets.Value("string"), "multiple_choice_answer": datasets.Value("string"),
        "answers": [{"answer": datasets.Value("string"), "answer_confidence": datasets.Value("string"),
                     "answer_id": datasets.Value("int64")}],
        "image": datasets.Image()})
    ds = datasets.Dataset.from_list(rows, features=features)
    if form == "parquet":
        ds.to_parquet(str(path))
    else:
        ds.save_to_disk(str(path))
    return path


def write_json(rows: list[dict], folder: Path, subtype: str) -> tuple[Path, Path, Path]:
    """Write the same rows as the official VQAv2 files and a COCO image folder; return (q, a, image root)."""
    root = folder / "coco"
    qs, anns = [], []
    for r in rows:
        img = root / subtype / f"COCO_{subtype}_{r['image_id']:012d}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(r["image"]["bytes"])
        qs.append({"image_id": r["image_id"], "question": r["question"], "question_id": r["question_id"]})
        anns.append({k: r[k] for k in ("question_id", "image_id", "question_type", "answer_type",
                                       "multiple_choice_answer", "answers")})
    q, a = folder / f"q_{subtype}.json", folder / f"a_{subtype}.json"
    q.write_text(json.dumps({"data_subtype": subtype, "questions": qs}))
    a.write_text(json.dumps({"annotations": anns}))
    return q, a, root


def content(root: Path, rel: str) -> str:
    return hashlib.sha256((root / rel).read_bytes()).hexdigest()


@pytest.mark.parametrize("form", ["parquet", "save_to_disk"])
def test_vqav2_rows_read_as_the_json_files_do(tmp_path, form, monkeypatch):
    monkeypatch.setenv("SYMDPO_IMAGE_CACHE", str(tmp_path / "cache"))
    rows = vqa_items(100, 4)
    src = write_hf(rows, tmp_path / ("val.parquet" if form == "parquet" else "val"), form)
    ours, root = read_hf(src, "vqav2")
    q, a, json_root = write_json(rows, tmp_path / "json", "val2014")
    theirs = list(read_vqa(q, a))
    assert len(ours) == len(theirs) == 12
    for x, y in zip(ours, theirs, strict=True):
        assert (x.id, x.question, x.answers, x.answer, x.question_type, x.answer_type) == \
               (y.id, y.question, y.answers, y.answer, y.question_type, y.answer_type)
        assert content(root, x.image) == content(json_root, y.image)  # the bytes datasets stored, written once
    assert len({x.image for x in ours}) == 4 and all(x.image.endswith(".jpg") for x in ours)


@pytest.mark.parametrize("task, row, expected", [
    ("okvqa", {"question_id": "5", "question": "what sport?", "answers": ["tennis"] * 9 + ["golf"],
               "question_type": "what", "answer_type": "other"}, ("5", "tennis", ("tennis",) * 9 + ("golf",))),
    ("textvqa", {"question_id": 7, "question": "what brand?", "answers": ["nokia"] * 10, "image_id": "abc",
                 "ocr_tokens": ["nokia"]}, ("7", "nokia", ("nokia",) * 10)),
    ("coco", {"question_id": "000000179765.jpg", "answer": ["a cat.", "a cat on a mat."], "id": 3},
     ("000000179765.jpg", None, ("a cat.", "a cat on a mat."))),
    ("flickr30k", {"img_id": "1000092795", "caption": ["two dogs.", "dogs run."], "filename": "1000092795.jpg"},
     ("1000092795", None, ("two dogs.", "dogs run."))),
])
def test_each_published_layout(tmp_path, task, row, expected):
    ds = datasets.Dataset.from_list([{**row, "image": {"bytes": jpeg(1), "path": None}}])
    ds = ds.cast_column("image", datasets.Image())
    ds.to_parquet(str(tmp_path / "d.parquet"))
    [record], root = read_hf(tmp_path / "d.parquet", task, image_dir=tmp_path / "images")
    rid, answer, texts = expected
    assert record.id == rid
    assert (record.answer, record.answers) == (answer, texts) if answer else record.captions == texts
    assert (root / record.image).read_bytes() == jpeg(1)


def test_images_given_as_paths_need_their_root(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(jpeg(2))
    ds = datasets.Dataset.from_list([{"question_id": 1, "question": "what?", "answers": ["x"],
                                      "image": {"bytes": None, "path": "a.jpg"}}])
    ds.to_parquet(str(tmp_path / "d.parquet"))
    with pytest.raises(DataError, match="give the folder they are relative to"):
        read_hf(tmp_path / "d.parquet", "textvqa", image_dir=tmp_path / "c")
    [record], root = read_hf(tmp_path / "d.parquet", "textvqa", image_dir=tmp_path / "c", image_root=tmp_path / "imgs")
    assert root == tmp_path / "imgs" and record.image == "a.jpg"


def test_a_parquet_without_a_needed_column_names_it_on_the_cli(tmp_path):
    ds = datasets.Dataset.from_list([{"question_id": 1, "question": "what?", "image": b"x"}])  # no answers
    ds.to_parquet(str(tmp_path / "bad.parquet"))
    r = subprocess.run([sys.executable, "-m", "symdpo", "data", "build", "--source", "vqav2", "--hf-dataset",
                        str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "p.jsonl")], env=ENV,
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.parquet" in lines[0] and "no column 'answers'" in lines[0], r.stderr
    assert not (tmp_path / "p.jsonl").exists()


def _symdpo(*args: str, cache: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "symdpo", *args], env={**ENV, "SYMDPO_IMAGE_CACHE": str(cache)},
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _canonical(pairs: Path, root: Path) -> list[dict]:
    """Return the pair records with every image path replaced by its file's content hash."""
    out = []
    for line in pairs.read_text().splitlines():
        rec = json.loads(line)
        text = json.dumps(rec, sort_keys=True)
        for rel in sorted(set(_paths(rec)), key=len, reverse=True):
            text = text.replace(json.dumps(rel), json.dumps(content(root, rel)))
        out.append(json.loads(text))
    return out


def _paths(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("image", "images") and isinstance(v, str):
                yield v
            elif k == "images" and isinstance(v, list):
                yield from (x for x in v if isinstance(x, str))
            else:
                yield from _paths(v)
    elif isinstance(node, list):
        for v in node:
            yield from _paths(v)


def test_data_build_and_eval_run_give_the_same_results_from_either_form(tmp_path):
    train, val = vqa_items(200, 12), vqa_items(900, 3)
    write_hf(train, tmp_path / "train.parquet", "parquet")
    write_hf(val, tmp_path / "val.parquet", "parquet")
    tq, ta, troot = write_json(train, tmp_path / "json", "train2014")
    vq, va, _ = write_json(val, tmp_path / "json", "val2014")
    cache = tmp_path / "cache"
    build = ["data", "build", "--source", "vqav2", "--k-max", "3", "--max-records", "20"]
    _symdpo(*build, "--questions", str(tq), "--annotations", str(ta), "--image-root", str(troot),
            "--out", str(tmp_path / "json.jsonl"), cache=cache)
    _symdpo(*build, "--hf-dataset", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "hf.jsonl"), cache=cache)
    hf_root = Path(json.loads((tmp_path / "hf.jsonl.manifest.json").read_text())["source"]["image_root"])
    pairs = _canonical(tmp_path / "json.jsonl", troot)
    assert len(pairs) == 20 and _canonical(tmp_path / "hf.jsonl", hf_root) == pairs

    run = ["eval", "run", "--model", "tiny", "--task", "vqav2", "--shots", "0,2", "--trials", "1", "--batch-size", "3",
           "--query-set-size", "12", "--no-progress"]
    _symdpo(*run, "--out", str(tmp_path / "e-json"), "--questions", str(vq), "--annotations", str(va),
            "--train-questions", str(tq), "--train-annotations", str(ta), "--image-root", str(tmp_path / "json/coco"),
            cache=cache)
    _symdpo(*run, "--out", str(tmp_path / "e-hf"), "--hf-dataset", str(tmp_path / "val.parquet"),
            "--train-hf-dataset", str(tmp_path / "train.parquet"), cache=cache)
    scores = [[(c["shots"], c["trials"][0]["score"]) for c in json.loads((tmp_path / d / "results.json").read_text())["results"]]
              for d in ("e-json", "e-hf")]
    assert scores[0] == scores[1]
    preds = [[(json.loads(line)["id"], json.loads(line)["raw"]) for line in (tmp_path / d / "predictions.jsonl").read_text().splitlines()]
             for d in ("e-json", "e-hf")]
    assert len(preds[0]) == 3 * 2 * 3 and preds[0] == preds[1]  # 3 images x 3 questions, at 0 and 2 shots


def _task_fixture(task: str, tmp: Path) -> tuple[list[str], list[str]]:
    """Write one task's items as its JSON files + image folder and as lmms-lab-layout parquet files; return
    (the JSON form's eval run options, the parquet form's)."""
    root = tmp / "json" / "images"
    rows = {"train": [], "val": []}
    karpathy, textvqa = [], {"train": [], "val": []}
    qs, anns = {"train": [], "val": []}, {"train": [], "val": []}
    for split, first, n in (("train", 300, 8), ("val", 700, 3)):
        for k in range(n):
            image_id, data = first + k, jpeg(first + k)
            options = ANSWERS[k % 3]
            answers = [options[(k // 3) % len(options)]]  # each question gets several answers across images
            if task == "textvqa":
                rel = f"train_images/{image_id}.jpg"
                textvqa[split].append({"question_id": image_id, "image_id": str(image_id), "question": QUESTIONS[k % 3],
                                       "answers": [answers[0]] * 10})
                rows[split].append({"question_id": image_id, "image_id": str(image_id), "question": QUESTIONS[k % 3],
                                    "answers": [answers[0]] * 10, "image": {"bytes": data, "path": None}})
            elif task == "okvqa":
                sub = f"{split}2014"
                rel = f"{sub}/COCO_{sub}_{image_id:012d}.jpg"
                qs[split].append({"image_id": image_id, "question": QUESTIONS[k % 3], "question_id": image_id * 10})
                anns[split].append({"question_id": image_id * 10, "image_id": image_id, "question_type": "what",
                                    "answer_type": "other", "answers": [{"answer": answers[0]} for _ in range(10)]})
                rows[split].append({"question_id": str(image_id * 10), "question": QUESTIONS[k % 3],
                                    "question_type": "what", "answer_type": "other", "answers": [answers[0]] * 10,
                                    "image": {"bytes": data, "path": None}})
            else:  # coco / flickr30k: Karpathy file vs the caption datasets
                rel = f"imgs/{image_id}.jpg"
                caps = [f"a {answers[0]} thing {j}." for j in range(5)]
                key = "cocoid" if task == "coco" else "imgid"
                karpathy.append({key: image_id, "filepath": "imgs", "filename": f"{image_id}.jpg",
                                 "split": "train" if split == "train" else "test",
                                 "sentences": [{"raw": c} for c in caps]})
                id_col, cap_col = ("question_id", "answer") if task == "coco" else ("img_id", "caption")
                rows[split].append({id_col: str(image_id), cap_col: caps, "image": {"bytes": data, "path": None}})
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
    hf = []
    for split in ("train", "val"):
        path = tmp / f"{task}-{split}.parquet"
        datasets.Dataset.from_list(rows[split]).cast_column("image", datasets.Image()).to_parquet(str(path))
        hf.append(str(path))
    hf_args = ["--hf-dataset", hf[1], "--train-hf-dataset", hf[0]]
    if task == "textvqa":
        files = []
        for split in ("val", "train"):
            f = tmp / f"textvqa_{split}.json"
            f.write_text(json.dumps({"data": textvqa[split]}))
            files.append(str(f))
        return ["--annotations", files[0], "--train-annotations", files[1], "--image-root", str(root)], hf_args
    if task == "okvqa":
        files = {}
        for split in ("val", "train"):
            sub = f"{split}2014"
            (tmp / f"q_{split}.json").write_text(json.dumps({"data_subtype": sub, "questions": qs[split]}))
            (tmp / f"a_{split}.json").write_text(json.dumps({"annotations": anns[split]}))
            files[split] = (str(tmp / f"q_{split}.json"), str(tmp / f"a_{split}.json"))
        return ["--questions", files["val"][0], "--annotations", files["val"][1], "--train-questions", files["train"][0],
                "--train-annotations", files["train"][1], "--image-root", str(root)], hf_args
    (tmp / "karpathy.json").write_text(json.dumps({"images": karpathy}))
    return ["--annotations", str(tmp / "karpathy.json"), "--image-root", str(root)], hf_args


@pytest.mark.parametrize("task", ["okvqa", "textvqa"])
def test_data_build_of_each_vqa_layout_equals_its_json_form(tmp_path, task):
    json_args, hf_args = _task_fixture(task, tmp_path)
    train_json = [json_args[i + 1] for i, a in enumerate(json_args) if a in ("--train-questions", "--train-annotations")]
    root = json_args[json_args.index("--image-root") + 1]
    files = (["--questions", train_json[0], "--annotations", train_json[1]] if task == "okvqa"
             else ["--annotations", train_json[0]])
    build = ["data", "build", "--source", task, "--k-min", "2", "--k-max", "2", "--mode", "sft"]
    cache = tmp_path / "cache"
    _symdpo(*build, *files, "--image-root", root, "--out", str(tmp_path / "json.jsonl"), cache=cache)
    _symdpo(*build, "--hf-dataset", hf_args[3], "--out", str(tmp_path / "hf.jsonl"), cache=cache)
    hf_root = Path(json.loads((tmp_path / "hf.jsonl.manifest.json").read_text())["source"]["image_root"])
    records = _canonical(tmp_path / "json.jsonl", Path(root))
    assert len(records) >= 4 and _canonical(tmp_path / "hf.jsonl", hf_root) == records


@pytest.mark.parametrize("task", ["okvqa", "textvqa", "coco", "flickr30k"])
def test_eval_run_of_each_layout_equals_its_json_form(tmp_path, task, monkeypatch):
    from typer.testing import CliRunner

    from symdpo.eval.cli import app

    json_args, hf_args = _task_fixture(task, tmp_path)
    monkeypatch.setenv("SYMDPO_IMAGE_CACHE", str(tmp_path / "cache"))
    run = ["run", "--model", "tiny", "--task", task, "--shots", "2", "--trials", "1", "--batch-size", "3",
           "--query-set-size", "8", "--no-progress"]
    for args, out in ((json_args, "e-json"), (hf_args, "e-hf")):  # in this process: no interpreter start-up each
        r = CliRunner().invoke(app, [*run, *args, "--out", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    results = [json.loads((tmp_path / d / "results.json").read_text())["results"] for d in ("e-json", "e-hf")]
    assert [c["trials"][0]["score"] for c in results[0]] == [c["trials"][0]["score"] for c in results[1]]
    preds = [[(json.loads(line)["id"], json.loads(line)["raw"]) for line in
              (tmp_path / d / "predictions.jsonl").read_text().splitlines()] for d in ("e-json", "e-hf")]
    assert len(preds[0]) == 3 and preds[0] == preds[1]
