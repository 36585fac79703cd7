"""`symdpo eval run` on the six VL-ICL tasks: every cell written for Flamingo and two HF families, sharding,
resume, the image diagnostics, compare, and one-line errors.

The fixtures follow VL-ICL's published layout (/work/shared/VL-ICL.md section 1); the expected cells are the
run's own grid (tasks x shots x trials x conditions) and the scores are recomputed here with VL-ICL's rules
(``score_one``, checked against hand-worked cases in test_vlicl.py) from the saved predictions.
"""

from __future__ import annotations

import json

import pytest
from eval_helpers import error_line
from vlicl_fixtures import write_all

from symdpo.eval.cli import app
from symdpo.eval.vlicl_data import FOLDERS, read_vlicl
from symdpo.eval.vlicl_scoring import score_one

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

TASKS = ",".join(FOLDERS)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("vlicl"))


def _args(data, out, *extra):
    return ["run", "--task", TASKS, "--vlicl-data", str(data), "--shots", "0,1", "--trials", "2",
            "--num-samples", "2", "--batch-size", "4", "--no-progress", "--out", str(out), *extra]


def _check_cells(data, out) -> None:
    """Every task x shots cell has two trials, a mean and std, and scores VL-ICL's rules give its predictions."""
    results = json.loads((out / "results.json").read_text())["results"]
    assert {(c["task"], c["shots"]) for c in results} == {(t, s) for t in FOLDERS for s in (0, 1)}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for cell in results:
        assert len(cell["trials"]) == 2 and cell["metric"] == "vlicl-parity" and cell["n"] == 2
        answers = {r.id: r.answer for r in read_vlicl(data, cell["task"], "query")}
        for trial in cell["trials"]:
            mine = [r for r in rows if (r["task"], r["shots"], r["seed"]) == (cell["task"], cell["shots"], trial["seed"])]
            expect = 100.0 * sum(score_one(FOLDERS[cell["task"]], r["raw"], answers[r["id"]]) for r in mine) / len(mine)
            assert trial["score"] == pytest.approx(expect)
    assert (out / "results.md").exists() and list(out.glob("*.png"))


@pytest.mark.parametrize("model", ["tiny-qwen2-vl", "tiny-idefics3"])
def test_hf_families_write_every_cell(cli, data, tmp_path, model) -> None:
    r = cli.invoke(app, _args(data, tmp_path / "run", "--model", model, "--task-description", "concise"))
    assert r.exit_code == 0, r.output
    _check_cells(data, tmp_path / "run")


def test_flamingo_resume_shards_compare(cli, data, tmp_path) -> None:
    killed = cli.invoke(app, _args(data, tmp_path / "a", "--model", "tiny", "--stop-after", "5"))
    assert killed.exit_code == 3
    done = cli.invoke(app, _args(data, tmp_path / "a", "--model", "tiny"))
    assert done.exit_code == 0 and "5 already done" in done.stderr, done.output
    _check_cells(data, tmp_path / "a")
    for rank in (0, 1):
        r = cli.invoke(app, _args(data, tmp_path / "s", "--model", "tiny", "--rank", str(rank), "--world-size", "2"))
        assert r.exit_code == 0, r.output
    assert cli.invoke(app, ["merge", str(tmp_path / "s")]).exit_code == 0
    pred = {(tmp_path / d / "predictions.jsonl").read_text() for d in ("a", "s")}
    assert len(pred) == 1  # sharded and resumed runs predict exactly what one uninterrupted run does
    shown = cli.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "s")], terminal_width=200)
    assert shown.exit_code == 0 and shown.stdout.count("+0.00") == 12, shown.output  # identical runs: 12 cells


def test_diagnostics_on_multi_image_demos(cli, data, tmp_path) -> None:
    # the image diagnostics: how much the model relies on the demonstration images, per task
    diag = cli.invoke(app, ["run", "--task", "vlicl-matching-mi", "--vlicl-data", str(data),
                            "--shots", "1", "--trials", "1", "--num-samples", "2", "--no-progress", "--model", "tiny",
                            "--demo-images", "real,blank,shuffled,none", "--demo-labels", "real,random-words",
                            "--vary", "each", "--out", str(tmp_path / "d")])
    assert diag.exit_code == 0, diag.output
    drops = json.loads((tmp_path / "d" / "results.json").read_text())["drops"]
    got = {(d["task"], d["condition"], d["value"]) for d in drops}
    assert got == {(t, c, v) for t in ("vlicl-matching-mi",) for c, v in
                   (("demo_images", "blank"), ("demo_images", "shuffled"), ("demo_images", "none"),
                    ("demo_labels", "random-words"))}


def test_bad_inputs_are_one_line(cli, data, tmp_path) -> None:
    line = error_line(cli.invoke(app, _args(data, tmp_path / "r", "--model", "tiny", "--task-description", "long")))
    assert "--task-description" in line and "nothing" in line
    line = error_line(cli.invoke(app, _args(tmp_path / "empty", tmp_path / "r", "--model", "tiny")))
    assert "not a folder" in line or "query.json: not found" in line
    (tmp_path / "empty" / "clevr").mkdir(parents=True)
    line = error_line(cli.invoke(app, ["run", "--task", "vlicl-clevr", "--vlicl-data", str(tmp_path / "empty"),
                                       "--model", "tiny", "--no-progress", "--out", str(tmp_path / "r2")]))
    assert "clevr/query.json: not found; --vlicl-data must be the VL-ICL folder" in line
    line = error_line(cli.invoke(app, _args(data, tmp_path / "r3", "--model", "tiny", "--vlicl-fixes", "lenient")))
    assert "--vlicl-fixes" in line
