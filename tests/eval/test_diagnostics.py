"""The diagnostics matrix: every condition's rendered 2-shot context, a whole-matrix run, bad input.

Rendered contexts are compared with strings written out by hand here for three formats (OpenFlamingo's eval
wording, Qwen2-VL's chat turns, Idefics3's User/Assistant turns), not with the format objects they come from.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
from eval_helpers import error_line
from PIL import Image
from typer.testing import CliRunner

from symdpo.eval.cli import app
from symdpo.eval.config import EvalConfig
from symdpo.eval.datasets import Split
from symdpo.eval.images import BLANK, ImageRef, folder_images
from symdpo.eval.labels import WORDS
from symdpo.eval.merge import merge_run
from symdpo.eval.plan import Condition, TaskPlan, conditions, make_trial
from symdpo.eval.prompts import OPENFLAMINGO
from symdpo.eval.runner import run_eval
from symdpo.eval.tasks import get_task
from symdpo.models.hf.families import FAMILIES
from symdpo.pseudowords import builtin_symbols

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

# hand-written: (prefix, demonstration, query) of each format, {q} / {a} the question and answer
HAND = {
    "openflamingo": (OPENFLAMINGO["vqa"], "",
                     "<image>Question:{q} Short answer:{a}<|endofchunk|>\n", "<image>Question:{q} Short answer:"),
    "qwen2-vl": (FAMILIES["qwen2_vl"].prompts["qwen2_vl"]["vqa"], "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
                 "<|im_start|>user\n<image>{q}\nAnswer the question using a single word or phrase.<|im_end|>\n"
                 "<|im_start|>assistant\n{a}<|endofchunk|>\n",
                 "<|im_start|>user\n<image>{q}\nAnswer the question using a single word or phrase.<|im_end|>\n"
                 "<|im_start|>assistant\n"),
    "idefics3": (FAMILIES["idefics3"].prompts["idefics3"]["vqa"], "<|begin_of_text|>",
                 "User:<image>{q}\nGive a very brief answer.<end_of_utterance>\nAssistant: {a}<|endofchunk|>\n",
                 "User:<image>{q}\nGive a very brief answer.<end_of_utterance>\nAssistant: "),
}
TRAIN = [NS(id="tr-0", image="tr/0.png", question="What shape is it?", answers=("circle",), answer="circle"),
         NS(id="tr-1", image="tr/1.png", question="What colour is the big one?", answers=("dark red",),
            answer="dark red")]
QUERY = NS(id="ev-0", image="ev/0.png", question="Is it round?", answers=("yes",), answer="yes")
OOD = [ImageRef("/ood", f"{i}.png") for i in range(5)]


def _plan(template) -> TaskPlan:
    train = Split(TRAIN, Path("/train"))
    return TaskPlan(get_task("vqav2"), Split([QUERY], Path("/eval")), train, [make_trial(train, 2, 3)],
                    template=template, ood_refs=OOD)


def _flat(context) -> tuple[str, list]:
    """Return the context as text with "<image>" where each image was, and its images in order."""
    return "".join("<image>" if isinstance(x, ImageRef) else x for x in context), [x for x in context if isinstance(x, ImageRef)]


@pytest.mark.parametrize("name", HAND)
def test_every_condition_renders_the_hand_written_two_shot_context(name) -> None:
    template, prefix, demo, query = HAND[name]
    plan = _plan(template)
    real_ids = plan.context(Condition("vqav2", 2, 0, 3, "real", "real"), QUERY)[1]
    assert real_ids == ["tr-0", "tr-1"]  # the seeded order of the 2-item pool (fixed by the trial seed 3)
    d0, d1 = TRAIN
    r0, r1, rq = ImageRef("/train", d0.image), ImageRef("/train", d1.image), ImageRef("/eval", QUERY.image)

    def expect(a0="circle", a1="dark red", *, demo_marker=True, query_marker=True) -> str:
        dm = demo if demo_marker else demo.replace("<image>", "")
        qm = query if query_marker else query.replace("<image>", "")
        return prefix + dm.format(q=d0.question, a=a0) + dm.format(q=d1.question, a=a1) + qm.format(q=QUERY.question)

    def render(demo_images="real", query_image="real", demo_labels="real"):
        ctx, ids = plan.context(Condition("vqav2", 2, 0, 3, demo_images, query_image, demo_labels), QUERY)
        assert ids == real_ids  # every condition shows the same demonstrations
        return _flat(ctx)

    assert render() == (expect(), [r0, r1, rq])
    assert render("blank") == (expect(), [BLANK, BLANK, rq])
    assert render("shuffled") == (expect(), [r1, r0, rq])  # the only derangement of two
    text, images = render("ood")
    assert text == expect() and images[2] == rq and len(set(images[:2])) == 2 and set(images[:2]) <= set(OOD)
    assert render("none") == (expect(demo_marker=False), [rq])
    assert render(query_image="blank") == (expect(), [r0, r1, BLANK])
    assert render(query_image="none") == (expect(query_marker=False), [r0, r1])
    assert render(demo_labels="none") == (expect("", ""), [r0, r1, rq])

    def labels(mode: str) -> tuple[str, str]:
        text, images = render(demo_labels=mode)
        assert images == [r0, r1, rq]
        pattern = re.escape(expect("\0", "\1")).replace("\\\0", "\0").replace("\\\1", "\1")
        pattern = pattern.replace("\0", "(?P<a0>[^\n<]*)").replace("\1", "(?P<a1>[^\n<]*)")
        m = re.fullmatch(pattern, text)
        assert m, text
        return m["a0"], m["a1"]

    a0, a1 = labels("random-strings")  # multimodal-icl: random letters, the label's length (per word here)
    assert re.fullmatch(r"[a-z]{6}", a0) and re.fullmatch(r"[a-z]{4} [a-z]{3}", a1)
    a0, a1 = labels("random-words")
    assert a0 in WORDS and a0 != "circle" and all(w in WORDS for w in a1.split()) and len(a1.split()) == 2
    a0, a1 = labels("symbols")
    question_words = {"what", "shape", "is", "it", "colour", "the", "big", "one", "round"}
    assert a0 != a1 and {a0, a1} <= set(builtin_symbols()) and not {a0, a1} & question_words
    assert labels("symbols") == (a0, a1)  # seeded by (trial seed, item): the same in every process


def _ood_folder(root: Path) -> Path:
    """Write scikit-image's sample photographs (not easy-VQA shapes: another source) as PNGs."""
    from skimage import data

    folder = root / "ood"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).resize((32, 32)).save(folder / f"{name}.png")
    return folder


def test_conditions_each_and_product() -> None:
    cfg = dict(model="tiny", tasks=["easyvqa"], shots=[0, 2], trials=1, ood_images="/x")
    each = EvalConfig(**cfg, demo_images=["real", "blank", "ood"], query_image=["none"],
                      demo_labels=["symbols"], vary="each")
    got = [(c.shots, c.demo_images, c.query_image, c.demo_labels) for c in conditions(each, "easyvqa")]
    assert got == [(0, "real", "real", "real"), (2, "real", "real", "real"), (2, "blank", "real", "real"),
                   (2, "ood", "real", "real"), (0, "real", "none", "real"), (2, "real", "none", "real"),
                   (0, "real", "real", "symbols"), (2, "real", "real", "symbols")]
    product = EvalConfig(**cfg, demo_images=["real", "blank"], query_image=["real"], demo_labels=["real", "none"])
    # 2 x 2 combinations at 2 shots, and at 0 shots only the real demo images (text-only demonstrations)
    assert len(conditions(product, "easyvqa")) == 4 + 2


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, tiny_model):
    """The whole matrix (every value, one at a time) on easy-VQA with the tiny model, 3 trials, two seeds."""
    root = tmp_path_factory.mktemp("matrix")
    ood = _ood_folder(root)
    runs = []
    for seed in (42, 7):
        config = EvalConfig(model="tiny", tasks=["easyvqa"], shots=[2], trials=3, seed=seed, num_samples=6,
                            query_set_size=16, demo_images=["real", "blank", "shuffled", "ood", "none"],
                            query_image=["real", "blank", "none"],
                            demo_labels=["real", "random-words", "random-strings", "symbols", "none"],
                            ood_images=str(ood), vary="each", batch_size=6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_eval(config, tiny_model, root / f"run{seed}")
        runs.append((root / f"run{seed}", merge_run(root / f"run{seed}")))
    return root, runs


def test_matrix_writes_every_cell_its_drop_and_the_tables(matrix) -> None:
    _, [(run, results), _] = matrix
    saved = json.loads((run / "results.json").read_text())
    cells = {(c["demo_images"], c["query_image"], c["demo_labels"]): c for c in saved["results"]}
    expected = {("real", "real", "real")} | {(d, "real", "real") for d in ("blank", "shuffled", "ood", "none")} \
        | {("real", q, "real") for q in ("blank", "none")} \
        | {("real", "real", lab) for lab in ("random-words", "random-strings", "symbols", "none")}
    assert set(cells) == expected and all(len(c["trials"]) == 3 and c["n"] == 6 for c in cells.values())
    base = cells["real", "real", "real"]
    assert len(saved["drops"]) == len(expected) - 1
    for d in saved["drops"]:
        key = {"demo_images": (d["value"], "real", "real"), "query_image": ("real", d["value"], "real"),
               "demo_labels": ("real", "real", d["value"])}[d["condition"]]
        cell = cells[key]
        assert d["drop"] == pytest.approx(base["mean"] - cell["mean"])  # numpy over the per-seed differences:
        per_seed = [b["score"] - c["score"] for b, c in zip(base["trials"], cell["trials"], strict=True)]
        assert d["drop_std"] == pytest.approx(np.std(per_seed)) and d["paired"]
    md, tex = (run / "results.md").read_text(), (run / "results.tex").read_text()
    assert "| easyvqa | 2 | real | real | symbols | vqa_accuracy |" in md and "±" in md
    assert "demo labels random-strings" in md and r"\pm" in tex and r"\toprule" in tex
    assert (run / "drops.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len(expected) * 3 * 6 and all("demo_labels" in r for r in rows)


def test_compare_two_matrix_runs_prints_each_difference_with_its_spread(matrix) -> None:
    _, [(a, ra), (b, rb)] = matrix
    out = CliRunner().invoke(app, ["compare", str(a), str(b)], env={"COLUMNS": "160"})
    assert out.exit_code == 0, out.output
    mean = {json.dumps(sorted((k, v) for k, v in c.items() if k in ("demo_images", "query_image", "demo_labels"))):
            c["mean"] for c in ra["results"]}
    assert len(mean) == 11
    lines = out.stdout.splitlines()
    for c in rb["results"]:
        if c["demo_labels"] == "symbols":
            key = json.dumps(sorted((k, v) for k, v in c.items() if k in ("demo_images", "query_image", "demo_labels")))
            row = next(ln for ln in lines if "symbols" in ln)
            assert f"{c['mean'] - mean[key]:+.2f}" in row
    assert "Welch" in out.stdout  # different trial seeds: the unpaired test against both runs' spread


# --- bad input: one line, no traceback ----------------------------------------------------------------------

RUN = ["run", "--model", "tiny", "--no-progress", "--trials", "1", "--task", "easyvqa", "--num-samples", "2",
       "--query-set-size", "8"]


def test_bad_conditions_are_one_line(cli, tmp_path) -> None:
    line = error_line(cli.invoke(app, [*RUN, "--demo-labels", "shuffled", "--out", str(tmp_path / "a")]))
    assert line.startswith("error: --demo-labels") and "'random-words'" in line and "'shuffled'" in line
    line = error_line(cli.invoke(app, [*RUN, "--query-image", "ood", "--out", str(tmp_path / "a")]))
    assert line.startswith("error: --query-image") and "'none'" in line
    line = error_line(cli.invoke(app, [*RUN, "--demo-images", "real,ood", "--out", str(tmp_path / "a")]))
    assert "'ood' need --ood-images FOLDER" in line
    line = error_line(cli.invoke(app, [*RUN, "--diagnostics", "--demo-images", "blank", "--out", str(tmp_path / "a")]))
    assert "--diagnostics runs every condition; drop --demo-images" in line


def test_too_few_ood_images_and_a_missing_folder_are_one_line(cli, tmp_path) -> None:
    ood = _ood_folder(tmp_path)
    line = error_line(cli.invoke(app, [*RUN, "--shots", "8", "--demo-images", "ood", "--ood-images", str(ood),
                                       "--out", str(tmp_path / "a")]))
    assert f"--ood-images {ood}: 4 images, but 8 shots need at least 8" in line
    line = error_line(cli.invoke(app, [*RUN, "--shots", "2", "--demo-images", "ood", "--ood-images",
                                       str(tmp_path / "nope"), "--out", str(tmp_path / "b")]))
    assert "nope: not a folder" in line


def test_diagnostics_flag_runs_the_matrix(cli, tmp_path) -> None:
    ood = _ood_folder(tmp_path)
    assert len(folder_images(ood)) == 4
    out = cli.invoke(app, [*RUN, "--shots", "2", "--diagnostics", "--ood-images", str(ood), "--batch-size", "2",
                           "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["vary"] == "each" and saved["demo_images"] == ["real", "blank", "shuffled", "ood", "none"]
    assert len(json.loads((tmp_path / "r" / "results.json").read_text())["results"]) == 11
