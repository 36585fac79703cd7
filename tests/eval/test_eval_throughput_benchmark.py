"""Smoke test of benchmarks/eval_throughput.py on two items: it still runs against the eval API it drives."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_throughput.py"


@pytest.mark.slow
@pytest.mark.parametrize("family, cache", [("flamingo", "feature cache"), ("qwen2-vl", "image cache")])
def test_eval_throughput_benchmark_runs_and_agrees(monkeypatch, capsys, family, cache):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # as when run as a script: its folder's common.py importable
    spec = importlib.util.spec_from_file_location("_eval_throughput_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--family", family, "--items", "2", "--trials", "2",
                                      "--repeats", "1", "--threads", "1"])
    try:
        bench.main()
    finally:
        torch.set_num_threads(threads)  # the benchmark sets the process's thread count
    lines = capsys.readouterr().out.strip().splitlines()
    assert "identical raw generations: 4/4" in lines  # 2 items x 2 trials
    # each trial shows the same query images again: the harness encodes each once (its cache is real)
    [counts] = [line for line in lines if line.startswith("harness: ")]
    encoded, slots, hits = map(int, re.fullmatch(r"harness: (\d+) images encoded for (\d+) image slots \((\d+) cache hits\)",
                                                 counts).groups())
    assert slots == 4 * 5 and hits >= 2 and encoded + hits >= slots
    assert any(line.startswith(f"harness (batch 8, {cache})") for line in lines)
    assert re.fullmatch(rf"harness vs per-item loop items/s ratio: \d+\.\d\dx \({family}, 4 predictions, 4 shots\)",
                        lines[-1])
