"""Two CPU processes (gloo, via torch.distributed.run) reproduce a one-process run with the same global batch.

Compared against: the 1-process run's per-step losses and metrics (1e-5) and its final weights (1e-5).
The 1-process run accumulates 2 micro-batches of 2 per step; the 2-process run does 1 micro-batch of 2 each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from tolerances import approx_metric

from symdpo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _args(data: Path, out: Path) -> list[str]:
    return ["-m", "symdpo.train.cli", "dpo", "--config", str(ROOT / "configs/tiny_dpo.yaml"), f"data.path={data}",
            f"output_dir={out}", "data.micro_batch_size=2", "data.global_batch_size=4", "optim.max_steps=4",
            "optim.lr=1e-2", "logging.progress=false", "logging.tensorboard=false", "logging.plot=false",
            "dpo.reference=live"]


def test_two_processes_match_one(pairs, tmp_path, torchrun):
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run([sys.executable, *_args(pairs, one)], env=ENV, capture_output=True, text=True,
                        timeout=300, cwd=ROOT)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = subprocess.run([*torchrun(2), *_args(pairs, two)], env=ENV, capture_output=True, text=True, timeout=300,
                        cwd=ROOT)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert json.loads((two / "run.json").read_text())["processes"] == 2
    assert json.loads((one / "run.json").read_text())["accumulation_steps"] == 2
    m1, m2 = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert [m["step"] for m in m1] == [m["step"] for m in m2] == [1, 2, 3, 4]
    for a, b in zip(m1, m2, strict=True):
        for key in ("loss", "loss/dpo", "loss/sft", "rewards/accuracies", "rewards/margins", "grad_norm"):
            assert a[key] == approx_metric(key, b[key]), (key, a["step"])
    assert m1[-1]["rewards/margins"] != 0  # the policy moved, so later steps test the synced updates
    w1, w2 = load_file(one / "final/trainable.safetensors"), load_file(two / "final/trainable.safetensors")
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=1e-5, rtol=0)


def test_close_process_group_destroys_the_group(tmp_path):
    """After a launched command, the default group is gone (gloo aborted at exit now and then when it was not)."""
    import torch.distributed as dist

    from symdpo.distributed import close_process_group

    close_process_group()  # nothing started: a no-op
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    close_process_group()
    assert not dist.is_initialized()
