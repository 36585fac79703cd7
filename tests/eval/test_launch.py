"""`symdpo eval run` under torchrun: two CPU processes split the batches and write what one process writes.

Compared against: the same command run as one process (its predictions.jsonl byte for byte, its results).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ARGS = ["-m", "symdpo", "eval", "run", "--model", "tiny", "--task", "easyvqa", "--shots", "0,2", "--trials", "1",
        "--num-samples", "6", "--batch-size", "3", "--no-progress"]


def _run(prefix: list[str], out) -> subprocess.CompletedProcess:
    proc = subprocess.run([*prefix, *ARGS, "--out", str(out)], env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_torchrun_shards_match_one_process(tmp_path, torchrun) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable], one)
    proc = _run(torchrun(2), two)
    assert "rank 0/2" in proc.stderr and "rank 1/2" in proc.stderr  # each process took its share
    assert sorted(p.name for p in (two / "predictions").iterdir()) == ["part-000.jsonl", "part-001.jsonl"]
    assert (two / "predictions.jsonl").read_text() == (one / "predictions.jsonl").read_text()
    results = [json.loads((d / "results.json").read_text())["results"] for d in (one, two)]
    assert results[0] == results[1]
