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
def test_eval_throughput_benchmark_runs_and_agrees(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("_eval_throughput_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--items", "2", "--repeats", "1", "--threads", "1"])
    try:
        bench.main()
    finally:
        torch.set_num_threads(threads)  # the benchmark sets the process's thread count
    lines = capsys.readouterr().out.strip().splitlines()
    assert "identical raw generations: 2/2" in lines
    assert re.fullmatch(r"harness vs per-item loop items/s ratio: \d+\.\d\dx \(flamingo, 2 items, 4 shots\)", lines[-1])
