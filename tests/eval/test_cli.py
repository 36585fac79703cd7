"""`symdpo eval` commands: a resumed run through the CLI, compare, and one-line errors for bad inputs."""

from __future__ import annotations

import json

import pytest
from eval_helpers import error_line
from PIL import Image

from symdpo.eval.cli import app

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # from transformers, inside the model

RUN = ["run", "--model", "tiny", "--no-progress", "--trials", "1"]


def test_run_resume_and_compare(cli, tmp_path) -> None:
    args = [*RUN, "--task", "easyvqa", "--shots", "0,2", "--num-samples", "3", "--query-set-size", "16",
            "--batch-size", "2", "--out", str(tmp_path / "a")]
    killed = cli.invoke(app, [*args, "--stop-after", "2"])
    assert killed.exit_code == 3 and not (tmp_path / "a" / "results.json").exists()
    done = cli.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "2 already done" in done.stderr and "| easyvqa | 2 | real | real |" in done.stdout
    assert len((tmp_path / "a" / "predictions.jsonl").read_text().splitlines()) == 6
    # a second run with other shots: compare shows the shared cells with deltas and the rest as "-"
    other = cli.invoke(app, [*RUN, "--task", "easyvqa", "--shots", "2", "--num-samples", "3", "--query-set-size",
                             "16", "--seed", "7", "--out", str(tmp_path / "b")])
    assert other.exit_code == 0, other.output
    b = json.loads((tmp_path / "b" / "results.json").read_text())["results"][0]["mean"]
    a = {c["shots"]: c["mean"] for c in json.loads((tmp_path / "a" / "results.json").read_text())["results"]}
    shown = cli.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    row2 = next(line for line in shown.stdout.splitlines() if "easyvqa" in line and "│     2 │" in line)
    assert f"{b - a[2]:+.2f}" in row2
    row0 = next(line for line in shown.stdout.splitlines() if "easyvqa" in line and "│     0 │" in line)
    assert row0.rstrip("│ ").endswith("-")


def test_unknown_task(cli, tmp_path) -> None:
    line = error_line(cli.invoke(app, [*RUN, "--task", "vqa3", "--out", str(tmp_path)]))
    assert "unknown task 'vqa3'; known tasks: coco, easyvqa" in line


def test_shots_larger_than_query_set(cli, tmp_path) -> None:
    line = error_line(cli.invoke(app, [*RUN, "--task", "easyvqa", "--shots", "4,32", "--query-set-size", "8",
                                       "--num-samples", "2", "--out", str(tmp_path)]))
    assert "32 shots need at least 32 demonstrations but the query set has 8 items" in line


def _vqa_files(tmp_path, *, answers=("red",) * 10, with_images=True):
    """Write a 3-question VQA split (questions + annotations) used as both train and val; return CLI options."""
    qs = {"data_subtype": "val2014", "questions": [
        {"question_id": i, "image_id": i, "question": f"What color is shape {i}?"} for i in range(3)]}
    anns = {"annotations": [{"question_id": i, "image_id": i, "answers": [{"answer": a} for a in answers],
                             "multiple_choice_answer": "red"} for i in range(3)]}
    (tmp_path / "q.json").write_text(json.dumps(qs))
    (tmp_path / "a.json").write_text(json.dumps(anns))
    (tmp_path / "img").mkdir()
    for i in range(3 if with_images else 2):
        Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / "img" / f"{i}.png")
    opts = ["--questions", "q.json", "--annotations", "a.json", "--image-root", "img"]
    opts += ["--train-questions", "q.json", "--train-annotations", "a.json", "--image-template", "{image_id}.png"]
    return [str(tmp_path / o) if o.endswith((".json", "img")) else o for o in opts]


def test_missing_image(cli, tmp_path) -> None:
    opts = _vqa_files(tmp_path, with_images=False)
    line = error_line(cli.invoke(app, [*RUN, "--task", "vqav2", "--shots", "0", *opts, "--out", str(tmp_path / "r")]))
    assert "vqav2: bad image" in line and "2.png" in line and "image file not found" in line


def test_annotation_without_answers(cli, tmp_path) -> None:
    opts = _vqa_files(tmp_path, answers=())
    line = error_line(cli.invoke(app, [*RUN, "--task", "vqav2", "--shots", "0", *opts, "--out", str(tmp_path / "r")]))
    assert "a.json" in line and "annotations[0]" in line and "'answers'" in line and "empty list" in line


def test_vqav2_needs_its_files(cli, tmp_path) -> None:
    line = error_line(cli.invoke(app, [*RUN, "--task", "vqav2", "--out", str(tmp_path)]))
    assert line == "error: task vqav2 needs --questions (the val questions JSON)"
