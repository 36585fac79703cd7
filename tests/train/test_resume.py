"""Preemption: kill -9 or SIGTERM mid-run, then --resume, ends bitwise equal to an uninterrupted run.

Compared against: the final trainable weights of the same run left uninterrupted (subprocesses, 1 thread).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from symdpo.train import checkpointing as ckpt
from symdpo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[2]
STEPS = 8


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "symdpo.train.cli", "dpo", "--config", str(ROOT / "configs/tiny_dpo.yaml"),
            f"data.path={data}", f"output_dir={out}", "data.micro_batch_size=2", "data.global_batch_size=4",
            f"optim.max_steps={STEPS}", "checkpoint.every_steps=2", "checkpoint.keep_last=2", "optim.lr=1e-2",
            "logging.progress=false", "logging.tensorboard=false", "logging.plot=false", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)


def _interrupt(args: list[str], out: Path, *, sig: int, after_step: int) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    target = ckpt.checkpoint_root(out) / f"step-{after_step:08d}"
    deadline = time.time() + 240
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"run ended before step {after_step}: {proc.stderr.read()[-2000:]}"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


@pytest.fixture(scope="module")
def uninterrupted(pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    r = _run(_cmd(pairs, out))
    assert r.returncode == 0, r.stderr[-3000:]
    return load_file(out / "final/trainable.safetensors")


def _assert_bitwise(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_kill9_then_resume_is_bitwise_equal(pairs, tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _interrupt(_cmd(pairs, out), out, sig=signal.SIGKILL, after_step=4)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final").exists()
    r = _run(_cmd(pairs, out, "--resume"))
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_bitwise(load_file(out / "final/trainable.safetensors"), uninterrupted)
    assert [m["step"] for m in read_metrics(out / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step-00000006", "step-00000008"]  # last 2 kept


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
                         ids=["ctrl-c", "sigterm"])
def test_signal_saves_exits_nonzero_and_resumes(pairs, tmp_path, uninterrupted, sig):
    """Ctrl-C and SIGTERM save at the end of the step, exit 128 + signal (so `train && eval` stops), resume whole."""
    out = tmp_path / "run"
    proc = _interrupt(_cmd(pairs, out), out, sig=sig, after_step=2)
    err = proc.stderr.read()
    assert proc.returncode == 128 + sig and signal.Signals(sig).name in err and "Traceback" not in err, err[-2000:]
    stopped_at = int(ckpt.latest_checkpoint(out).name.split("-")[1])
    assert 2 <= stopped_at < STEPS
    assert max(m["step"] for m in read_metrics(out / "metrics.jsonl")) == stopped_at  # no step done and lost
    r = _run(_cmd(pairs, out, "--resume"))
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_bitwise(load_file(out / "final/trainable.safetensors"), uninterrupted)


def test_resume_refuses_what_it_cannot_resume(pairs, tmp_path):
    """--resume on a folder that is not there, or with a config that changes the run: one line, nothing written."""
    r = _run(_cmd(pairs, tmp_path / "absent", "--resume"))
    assert r.returncode == 1 and "does not exist" in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr
    assert not (tmp_path / "absent").exists()
    out = tmp_path / "run"
    proc = _interrupt(_cmd(pairs, out), out, sig=signal.SIGKILL, after_step=2)
    assert proc.returncode == -signal.SIGKILL
    r = _run(_cmd(pairs, out, "--resume", "optim.lr=5e-3"))
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and "optim.lr" in last and "Traceback" not in r.stderr, r.stderr[-2000:]
    r = _run(_cmd(pairs, out, "--resume", "logging.every_steps=2"))  # logging may change on a resume
    assert r.returncode == 0, r.stderr[-2000:]


def test_refuses_to_overwrite_without_resume(pairs, tmp_path):
    (ckpt.checkpoint_root(tmp_path) / "step-00000002").mkdir(parents=True)
    (ckpt.checkpoint_root(tmp_path) / "step-00000002/state.json").write_text("{}")
    r = _run(_cmd(pairs, tmp_path))
    assert r.returncode != 0 and "--resume" in r.stderr


def test_half_written_checkpoint_is_never_loaded(tmp_path, monkeypatch):
    """A save that dies midway leaves only a hidden temp folder: the previous checkpoint stays the latest."""
    acc = SimpleNamespace(is_main_process=True, process_index=0, wait_for_everyone=lambda: None)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    kw = dict(model=model, optimizer=opt, scheduler=sched, keep_last=2, sharded=False, state={})
    ckpt.save_checkpoint(acc, tmp_path, 2, trainable=dict(model.named_parameters()), **kw)
    real_save = torch.save

    def dying_save(obj, path, *a, **k):
        if str(path).endswith("scheduler.pt"):
            raise KeyboardInterrupt("killed while saving")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(ckpt.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(acc, tmp_path, 4, trainable=dict(model.named_parameters()), **kw)
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000002"
    assert (ckpt.checkpoint_root(tmp_path) / ".tmp-step-00000004/trainable.safetensors").is_file()
    ckpt.remove_partial(tmp_path)
    assert [p.name for p in ckpt.checkpoint_root(tmp_path).iterdir()] == ["step-00000002"]
