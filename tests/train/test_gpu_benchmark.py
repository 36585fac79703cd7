"""benchmarks/gpu.py (the prepared GPU run) still runs end to end: its tiny size on this CPU, every part.

It checks what a GPU session would otherwise discover too late: every variant of the table runs, packed and
compiled steps included, compilation builds no graph while timed, the reference generates the same tokens as
ours, and the headline has its shape.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.ci
def test_the_gpu_benchmark_runs_on_its_tiny_size():
    r = subprocess.run([sys.executable, "benchmarks/gpu.py", "--size", "tiny", "--steps", "1"],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    table = [line.split() for line in lines if re.match(r"\s+[18] ", line)]
    assert sorted((row[0], row[1]) for row in table) == sorted(
        (n, v) for n in ("8", "1") for v in ("naive", "shared-prefix", "packed", "packed+compile"))
    assert all("0 graphs built while timed" in line for line in lines if "packed+compile" in line)
    assert re.search(r"3-beam .* True$", r.stdout, re.M)  # same tokens as open-flamingo 2.0.1
    assert re.fullmatch(r"gpu benchmark \(tiny, cpu\): MFU n/a \(no GPU peak\); shared-prefix vs naive \d+\.\d\dx; "
                        r"generation \d+\.\d\dx; eval \d+\.\d\dx", lines[-1])
