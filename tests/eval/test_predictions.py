"""Prediction JSONL: a cut-off last line is dropped and overwritten, a bad whole line is an error."""

from __future__ import annotations

import json

import pytest

from symdpo.eval.errors import EvalError
from symdpo.eval.predictions import PredictionWriter, read_all, read_rows, row_key


def _row(i: int) -> dict:
    return {"task": "t", "shots": 4, "trial": 0, "demo_images": "real", "query_image": "real", "id": str(i),
            "prediction": f"p{i}"}


def test_truncated_last_line_is_dropped_then_overwritten(tmp_path) -> None:
    path = tmp_path / "part-000.jsonl"
    with PredictionWriter(path) as w:
        w.write(_row(0))
        w.write(_row(1))
    with open(path, "a") as f:  # what a kill in the middle of a write leaves
        f.write(json.dumps(_row(2))[:17])
    assert [r["id"] for r in read_rows(path)] == ["0", "1"]
    with PredictionWriter(path) as w:  # reopening truncates the fragment before appending
        w.write(_row(2))
    assert [r["id"] for r in read_rows(path)] == ["0", "1", "2"]
    assert path.read_text().count("\n") == 3


def test_read_all_merges_parts_first_copy_wins(tmp_path) -> None:
    for rank, ids in ((0, [0, 1]), (1, [1, 2])):
        with PredictionWriter(tmp_path / f"part-{rank:03d}.jsonl") as w:
            for i in ids:
                w.write({**_row(i), "prediction": f"rank{rank}"})
    rows = read_all(tmp_path)
    assert sorted(k[-1] for k in rows) == ["0", "1", "2"]
    assert rows[row_key(_row(1))]["prediction"] == "rank0"


def test_corrupt_whole_line_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "part-000.jsonl"
    path.write_text(json.dumps(_row(0)) + "\n{not json\n")
    with pytest.raises(EvalError, match=r"part-000.jsonl:2: not a prediction row"):
        list(read_rows(path))
