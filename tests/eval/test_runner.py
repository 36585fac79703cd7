"""End to end on easy-VQA with the tiny model: outputs, resume after a kill, 2-process sharding, RICES."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest

from symdpo.eval.config import EvalConfig
from symdpo.eval.errors import EvalError
from symdpo.eval.merge import merge_run
from symdpo.eval.runner import run_eval

CONFIG = EvalConfig(model="tiny", tasks=["easyvqa"], shots=[0, 2], trials=2, num_samples=4, query_set_size=32,
                    demo_images=["real", "blank"], batch_size=4)
N_ROWS = 4 * 2 * 3  # items x trials x (0-shot, 2-shot real, 2-shot blank)


def _run(tmp_path, name, model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return run_eval(kw.pop("config", CONFIG), model, tmp_path / name, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """An uninterrupted single-process run, merged."""
    root = tmp_path_factory.mktemp("ref")
    stats = _run(root, "run", tiny_model)
    assert stats.written == N_ROWS and not stats.interrupted
    return root / "run", merge_run(root / "run")


def _lines(path):
    return path.read_text().splitlines()


def test_outputs(reference) -> None:
    run, results = reference
    for name in ("results.json", "results.md", "shots_easyvqa.png", "predictions.jsonl", "config.json"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / "results.json").read_text())
    assert {"config", "model", "versions", "git_revision", "cider_tokenizer", "results", "drops"} <= set(saved)
    assert saved["versions"]["torch"] and saved["config"]["shots"] == [0, 2]
    cells = {(c["shots"], c["demo_images"]): c for c in saved["results"]}
    assert set(cells) == {(0, "real"), (2, "real"), (2, "blank")}
    assert all(len(c["trials"]) == 2 and c["n"] == 4 for c in cells.values())
    [rel] = saved["drops"]
    assert (rel["shots"], rel["condition"], rel["value"]) == (2, "demo_images", "blank")
    assert rel["drop"] == pytest.approx(cells[2, "real"]["mean"] - cells[2, "blank"]["mean"])
    assert "| easyvqa | 2 | blank | real | real | vqa_accuracy |" in (run / "results.md").read_text()
    assert (run / "shots_easyvqa.png").read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(line) for line in _lines(run / "predictions.jsonl")]
    assert len(rows) == N_ROWS
    blank_demos = {r["id"]: r["demo_ids"] for r in rows if r["demo_images"] == "blank" and r["trial"] == 0}
    real_demos = {r["id"]: r["demo_ids"] for r in rows if r["demo_images"] == "real" and r["shots"] == 2
                  and r["trial"] == 0}
    assert blank_demos == real_demos  # same demonstrations, only their images differ


def test_resume_after_kill_gives_identical_results(reference, tiny_model, tmp_path) -> None:
    ref_run, ref_results = reference
    first = _run(tmp_path, "run", tiny_model, stop_after=5)  # a kill in the middle of the second batch
    assert first.interrupted and first.written == 5
    part = tmp_path / "run" / "predictions" / "part-000.jsonl"
    with open(part, "a") as f:
        f.write('{"task": "easyvqa", "sho')  # and the half-written line it left
    second = _run(tmp_path, "run", tiny_model)
    assert (second.skipped, second.written) == (5, N_ROWS - 5)
    keys = Counter(tuple(json.loads(line)[k] for k in ("shots", "trial", "demo_images", "id")) for line in _lines(part))
    assert len(keys) == N_ROWS and max(keys.values()) == 1  # nothing duplicated, nothing lost
    results = merge_run(tmp_path / "run")
    assert _lines(tmp_path / "run" / "predictions.jsonl") == _lines(ref_run / "predictions.jsonl")
    assert results["results"] == ref_results["results"]
    again = _run(tmp_path, "run", tiny_model)  # a finished run does nothing
    assert (again.written, again.skipped) == (0, N_ROWS)


def test_two_shards_equal_one_process(reference, tiny_model, tmp_path) -> None:
    ref_run, ref_results = reference
    a = _run(tmp_path, "run", tiny_model, rank=0, world=2)
    with pytest.raises(EvalError, match="predictions missing"):
        merge_run(tmp_path / "run")  # rank 1 has not run yet
    b = _run(tmp_path, "run", tiny_model, rank=1, world=2)
    assert a.written + b.written == N_ROWS and a.written > 0 and b.written > 0
    assert {p.name for p in (tmp_path / "run" / "predictions").iterdir()} == {"part-000.jsonl", "part-001.jsonl"}
    results = merge_run(tmp_path / "run")
    assert _lines(tmp_path / "run" / "predictions.jsonl") == _lines(ref_run / "predictions.jsonl")
    assert results["results"] == ref_results["results"]


def test_changed_config_is_refused(reference, tiny_model, tmp_path) -> None:
    _run(tmp_path, "run", tiny_model, stop_after=1)
    with pytest.raises(EvalError, match="different seed"):
        _run(tmp_path, "run", tiny_model, config=CONFIG.model_copy(update={"seed": 1}))


def test_rices_and_query_blank(tiny_model, tmp_path) -> None:
    config = EvalConfig(model="tiny", tasks=["easyvqa"], shots=[2], trials=1, num_samples=3, query_set_size=16,
                        demo_selection="rices", retrieval_encoder="tiny-clip", query_image=["real", "blank"],
                        batch_size=4)
    stats = _run(tmp_path, "run", tiny_model, config=config)
    assert stats.written == 6
    rows = [json.loads(line) for line in _lines(tmp_path / "run" / "predictions" / "part-000.jsonl")]
    by_query = {q: {r["id"]: r["demo_ids"] for r in rows if r["query_image"] == q} for q in ("real", "blank")}
    assert by_query["real"] == by_query["blank"] and all(len(d) == 2 for d in by_query["real"].values())
