"""benchmarks/scale_gpu.py (the GPU scaling table) still runs: its tiny size on two CPU processes, every engine.

It launches each shipped accelerate config the way a user does; a config that stops working shows as a
"failed" row, which this test catches before a GPU session is spent on it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.ci
def test_every_engine_runs_and_the_headline_compares_with_ddp():
    r = subprocess.run([sys.executable, "benchmarks/scale_gpu.py", "--size", "tiny", "--steps", "1", "--pairs", "2"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert sorted(rows) == ["DDP", "FSDP2", "ZeRO-2", "ZeRO-3"], lines
    assert not any("failed" in row for row in rows.values()), lines
    assert re.fullmatch(r"vs DDP: FSDP2 \d+\.\d\dx memory, \d+\.\d\dx step time; ZeRO-3 \d+\.\d\dx memory, "
                        r"\d+\.\d\dx step time", lines[-1])
