"""`symdpo train dpo` on TRL-layout vision preference data (``data.path`` a folder or parquet file).

Compared against: the same command on the records themselves (the TRL export of records must train as they
do: same step-0 loss, same step-1 loss and rewards, so the same contexts, answers, images and reference), and,
for TRL data symdpo did not write, OpenFlamingo's evaluation wording written out by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from tolerances import approx_metric

from symdpo.cli import app, run_app
from symdpo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("loss", "loss/dpo", "loss/sft", "logps/chosen", "logps/rejected", "rewards/chosen", "rewards/rejected")


def _train(data: Path, out: Path, *overrides: str) -> list[dict]:
    """Run `symdpo train dpo` (2 steps of 4 pairs) on ``data``; return its logged metrics."""
    run_app(app, ["train", "dpo", "--config", str(ROOT / "configs/tiny_dpo.yaml"), f"data.path={data}",
                  f"output_dir={out}", "data.micro_batch_size=2", "data.global_batch_size=4", "optim.max_steps=2",
                  "logging.progress=false", "logging.tensorboard=false", "logging.plot=false", *overrides], "symdpo")
    return read_metrics(out / "metrics.jsonl")


@pytest.fixture(scope="module")
def export(tmp_path_factory, pair_builder) -> tuple[Path, Path]:
    """Return (8 easy-VQA SymDPO pairs, their `symdpo data export --format trl` folder)."""
    from symdpo.data.export import export

    tmp = tmp_path_factory.mktemp("trl")
    records = pair_builder(tmp / "pairs.jsonl", n=8)
    export(records, "trl", tmp / "pairs-trl")
    return records, tmp / "pairs-trl"


@pytest.mark.parametrize("model", [["model.name=tiny", "model.gate_init=0.5"], ["model.name=tiny-qwen2-vl"]],
                         ids=["tiny-flamingo", "tiny-qwen2-vl"])
def test_export_trains_as_its_records(export, tmp_path, model):
    """The TRL export gives the records' step-0 loss (and step-1 loss and rewards, after an update) with the
    OpenFlamingo wording (gates open, so images count) and with Qwen2-VL's chat format."""
    records, folder = export
    want = _train(records, tmp_path / "records", *model)
    got = _train(folder, tmp_path / "trl", *model)
    assert len(got) == len(want) == 2
    print(f"step-0 loss: records {want[0]['loss']!r}, TRL export {got[0]['loss']!r}")
    for a, b in zip(got, want, strict=True):
        for key in KEYS:
            assert a[key] == approx_metric(key, b[key]), (key, a["step"])
    assert got[1]["rewards/accuracies/text"] == want[1]["rewards/accuracies/text"]  # the export's rejected types
    assert got[0]["loss"] != pytest.approx(got[1]["loss"], rel=1e-5)  # it did train
    # the reference log-probs lie beside the export folder: `data push` uploads what is inside it
    assert list(folder.parent.glob(f"{folder.name}.reflogps-*.safetensors"))
    assert not list(folder.rglob("*.reflogps-*"))


def _images() -> list[dict]:
    from symdpo.data.sources import easyvqa_root

    root = easyvqa_root("train")
    return [{"bytes": (root / f"images/{i}.png").read_bytes(), "path": f"{i}.png"} for i in range(4)]


def _save(folder: Path, rows: list[dict], *, images: bool = True) -> Path:
    """Write ``rows`` as a parquet file the way `datasets` writes TRL-layout data; return its path."""
    from datasets import Dataset, Features, Image, List, Value

    turns = List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})})
    features = {"prompt": turns, "chosen": turns, "rejected": turns, **({"images": List(Image())} if images else {})}
    if rows and isinstance(rows[0]["prompt"], str):
        features.update(prompt=Value("string"), chosen=Value("string"), rejected=Value("string"))
    folder.mkdir(parents=True)
    Dataset.from_list(rows, features=Features(features)).to_parquet(str(folder / "train.parquet"))
    return folder / "train.parquet"


def _user(*items: str | None) -> dict:
    """Return a user turn: None for an image item, a string for a text item."""
    return {"role": "user", "content": [{"type": "image", "text": None} if i is None else {"type": "text", "text": i}
                                        for i in items]}


def _answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def test_trl_data_from_elsewhere_trains(tmp_path):
    """Single-turn rows with one or two images (one after its text) are queries in the model's format; the
    tiny Flamingo trains on them. Compared against OpenFlamingo's VQA wording, written out by hand."""
    from symdpo.models.prompts import OPENFLAMINGO
    from symdpo.train.data import open_dataset

    img = _images()
    rows = [
        {"prompt": [_user(None, None, "Which shape is red?")], "chosen": _answer("circle"),
         "rejected": _answer("square"), "images": img[:2]},
        {"prompt": [_user("Is this", None, " a circle?")], "chosen": _answer("yes"), "rejected": _answer("no"),
         "images": img[2:3]},
    ]
    data = _save(tmp_path / "mine", rows)
    ds = open_dataset(data, prompts=OPENFLAMINGO)
    texts = [[p if isinstance(p, str) else "IMG" for p in ds[i].context] for i in range(2)]
    assert texts == [["IMG", "IMG", "Question:Which shape is red? Short answer:"],
                     ["Question:Is this", "IMG", " a circle? Short answer:"]]
    assert ds.answers(0) == ("circle<|endofchunk|>", "square<|endofchunk|>") and ds[1].id == "row 1"
    metrics = _train(data, tmp_path / "run", "data.global_batch_size=2", "optim.max_steps=1")
    assert len(metrics) == 1 and math.isfinite(metrics[0]["loss"])
    assert not any(k.startswith("rewards/accuracies/") for k in metrics[0])  # no rejected types in this data


def _one_line(capsys, data: Path, tmp: Path) -> str:
    capsys.readouterr()  # what writing the data printed
    with pytest.raises(SystemExit) as exc:
        _train(data, tmp / "run")
    text = capsys.readouterr().err.strip()
    assert exc.value.code != 0 and "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def test_bad_trl_data_is_one_line(capsys, tmp_path):
    """A missing column, an image count that does not match the image items, a plain-text (non-conversational)
    row: one line naming the file, the row and the field, and what to do."""
    img = _images()
    good = {"prompt": [_user(None, "Is it red?")], "chosen": _answer("yes"), "rejected": _answer("no")}
    cases = {
        "no-images": (_save(tmp_path / "a", [good], images=False), ("no images column", "TRL's conversational")),
        "count": (_save(tmp_path / "b", [{**good, "images": img[:1]},
                                         {**good, "prompt": [_user(None, None, "Same?")], "images": img[:1]}]),
                  ("row 1: field 'images': 1 images for 2 {\"type\": \"image\"} items",)),
        "plain": (_save(tmp_path / "c", [{"prompt": "Is it red?", "chosen": "yes", "rejected": "no",
                                          "images": img[:1]}]),
                  ("row 0: field 'prompt': is plain text", "conversational")),
        "ends-on-assistant": (_save(tmp_path / "d", [{**good, "prompt": [*good["prompt"], *_answer("yes")],
                                                      "images": img[:1]}]),
                              ("row 0: field 'prompt': does not end on a user turn",)),
    }
    for name, (data, words) in cases.items():
        text = _one_line(capsys, data, tmp_path / name)
        assert text.startswith(f"error: {data}"), text
        for w in words:
            assert w in text, (name, text)


def test_a_folder_without_data_names_what_to_give(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    text = _one_line(capsys, tmp_path / "empty", tmp_path)
    assert "no dataset in it" in text and "symdpo data export --format trl" in text
