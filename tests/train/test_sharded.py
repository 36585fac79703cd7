"""The shipped accelerate configs, launched as a user launches them, on two CPU processes (gloo).

Compared against: a one-process run with the same global batch (the first 4 steps' losses and metrics, 1e-5,
and the final saved weights, 1e-5), for the Flamingo family and an HF family (Qwen2-VL with LoRA); and, for
preemption, the uninterrupted one-process run's final weights after a kill -9 and a ``--resume`` on two
processes or on one.

DeepSpeed ZeRO-2/3 run here through DeepSpeed's CPU accelerator over the gloo group; its ZeRO optimiser
steps flattened partitions and clips by a norm reduced in another order, so its weights match to 1e-4, not
1e-5 (its losses to 1e-5 like the others).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tolerances import approx_metric

from symdpo.train import checkpointing as ckpt
from symdpo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
METRICS = ("loss", "loss/dpo", "loss/sft", "rewards/accuracies", "rewards/margins", "grad_norm")


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _train(data: Path, out: Path, model: str, steps: int, *extra: str) -> list[str]:
    return ["-m", "symdpo.train.cli", "dpo", "--config", str(ROOT / "configs/tiny_dpo.yaml"), f"data.path={data}",
            f"output_dir={out}", f"model.name={model}", "data.micro_batch_size=2", "data.global_batch_size=4",
            f"optim.max_steps={steps}", "optim.lr=1e-2", "checkpoint.every_steps=2", "checkpoint.keep_last=2",
            "logging.progress=false", "logging.tensorboard=false", "logging.plot=false", *extra]


def _launch(config: str) -> list[str]:
    """Return the user's launch line for a shipped config on two CPU processes (fp32 for exact comparison)."""
    return [*ACCELERATE, "--config_file", str(ROOT / "configs/accelerate" / config), "--num_processes", "2",
            "--main_process_port", _port(), "--mixed_precision", "no"]


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-4000:]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    """Return the final save's weights (trainable weights over the base, or the full merged HF model)."""
    final = out / "final"
    path = final / "trainable.safetensors"
    return load_file(path if path.exists() else final / "hf" / "model.safetensors")


_ONE: dict[str, Path] = {}


def _one_process(pairs: Path, tmp_root: Path, model: str, steps: int) -> Path:
    """Return the output folder of the one-process run (made once per model and step count)."""
    key = f"{model}-{steps}"
    if key not in _ONE:
        out = tmp_root / f"one-{key}"
        _run([sys.executable, *_train(pairs, out, model, steps)])
        _ONE[key] = out
    return _ONE[key]


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sharded")


@pytest.mark.slow
@pytest.mark.parametrize("config, model", [("fsdp.yaml", "tiny"), ("fsdp_shard_grad_op.yaml", "tiny"),
                                           ("ddp.yaml", "tiny"), ("fsdp.yaml", "tiny-qwen2-vl"),
                                           ("deepspeed_zero2.yaml", "tiny"), ("deepspeed_zero3.yaml", "tiny"),
                                           pytest.param("deepspeed_zero3.yaml", "tiny-qwen2-vl",
                                                        marks=pytest.mark.ci)])
def test_two_processes_match_one(pairs, tmp_root, tmp_path, config, model):
    one = _one_process(pairs, tmp_root, model, 4)
    two = tmp_path / "two"
    _run([*_launch(config), *_train(pairs, two, model, 4)])
    run = json.loads((two / "run.json").read_text())
    assert run["processes"] == 2
    expected = {"fsdp": "FSDP", "deepspeed": "DEEPSPEED"}.get(config.split("_")[0].removesuffix(".yaml"),
                                                               "MULTI_CPU")  # ddp.yaml: DDP over gloo
    assert run["distributed_type"] == f"DistributedType.{expected}"
    m1, m2 = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert [m["step"] for m in m2] == [1, 2, 3, 4]
    for a, b in zip(m1, m2, strict=True):
        for key in METRICS:
            assert a[key] == approx_metric(key, b[key]), (key, a["step"])
    assert m1[-1]["rewards/margins"] != 0  # the policy moved: later steps test the synced updates
    if expected == "FSDP":  # sharded checkpoints: a distributed checkpoint, one file per process
        assert (ckpt.latest_checkpoint(two) / ckpt.DCP_DIR).is_dir()
    w1, w2 = _weights(one), _weights(two)
    assert sorted(w1) == sorted(w2)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-4 if expected == "DEEPSPEED" else 1e-5, rtol=0)


@pytest.mark.parametrize("model", ["tiny", pytest.param("tiny-qwen2-vl", marks=pytest.mark.ci)])
def test_ram_efficient_loading_builds_other_processes_on_meta(pairs, tmp_root, tmp_path, model):
    """`fsdp_cpu_ram_efficient_loading: true`: the second process builds no weights of its own, receives the
    main process's when sharded, and the run still equals the one-process run. The data is a fresh copy, so
    the reference log-probs are computed in this run, by the one process that has weights before sharding."""
    one = _one_process(pairs, tmp_root, model, 4)
    two = tmp_path / "two"
    data = tmp_path / "data" / pairs.name
    data.parent.mkdir()
    for f in (pairs, pairs.with_name(f"{pairs.name}.manifest.json")):
        shutil.copy(f, data.parent / f.name)
    r = subprocess.run([*_launch("fsdp.yaml"), "--fsdp_cpu_ram_efficient_loading", "true",
                        *_train(data, two, model, 4)], env=ENV, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "process 1: parameters built on the meta device" in r.stderr
    assert "process 0: parameters built" not in r.stderr
    for a, b in zip(read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl"), strict=True):
        for key in METRICS:
            assert a[key] == approx_metric(key, b[key]), (key, a["step"])
    w1, w2 = _weights(one), _weights(two)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.ci  # about 40 s (a one-process resume is tested in test_resume.py within make test)
@pytest.mark.parametrize("config", ["fsdp.yaml", "deepspeed_zero3.yaml"])
def test_kill9_then_resume(pairs, tmp_root, tmp_path, config):
    """kill -9 of a two-process sharded run after its step-4 checkpoint (the reference log-probs precomputed,
    split over the processes); --resume on two processes ends where the uninterrupted run ends, and so does
    a copy of an FSDP run's folder resumed on one process (its checkpoint is a distributed checkpoint)."""
    steps = 8
    zero = config.startswith("deepspeed")
    expected = _weights(_one_process(pairs, tmp_root, "tiny", steps))
    out = tmp_path / "killed"
    cmd = [*_launch(config), *_train(pairs, out, "tiny", steps)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    target = ckpt.checkpoint_root(out) / "step-00000004"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before step 4: {proc.stderr.read()[-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers, at once
    proc.wait(timeout=60)
    assert not (out / "final").exists()
    runs = [out]
    if not zero:  # DeepSpeed's engine state loads only into DeepSpeed
        alone = tmp_path / "alone"
        shutil.copytree(out, alone)
        _run([sys.executable, *_train(pairs, alone, "tiny", steps), "--resume"])
        runs.append(alone)
    _run([*_launch(config), *_train(pairs, out, "tiny", steps), "--resume"])
    for folder in runs:
        run = json.loads((folder / "run.json").read_text())
        assert run["start_step"] >= 4, run
        got = _weights(folder)
        for k in expected:
            torch.testing.assert_close(got[k], expected[k], atol=1e-4 if zero else 1e-5, rtol=0)
    # the sharded run's final save is an ordinary one: it loads, and exports to a full copy that loads
    from symdpo.models.registry import load_model

    export = tmp_path / "export"
    _run([sys.executable, "-m", "symdpo", "model", "export", str(out / "final"), "--out", str(export)])
    a, b = load_model(str(out / "final")).module.state_dict(), load_model(str(export)).module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.ci
def test_sigterm_under_fsdp_saves_on_every_process_and_resumes(pairs, tmp_path, tmp_root):
    """SIGTERM to the launcher (what SLURM sends before the time limit): both workers stop after the same
    step, save one checkpoint together, exit; --resume ends where the uninterrupted run ends."""
    steps = 8
    expected = _weights(_one_process(pairs, tmp_root, "tiny", steps))
    out = tmp_path / "run"
    proc = subprocess.Popen([*_launch("fsdp.yaml"), *_train(pairs, out, "tiny", steps)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
    target = ckpt.checkpoint_root(out) / "step-00000002"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before step 2: {proc.stderr.read()[-3000:]}"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode != 0 and not (out / "final").exists(), err[-3000:]
    stopped = ckpt.latest_checkpoint(out)
    assert 2 <= int(stopped.name.split("-")[1]) < steps and (stopped / ckpt.DCP_DIR).is_dir()
    _run([*_launch("fsdp.yaml"), *_train(pairs, out, "tiny", steps), "--resume"])
    got = _weights(out)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], atol=1e-5, rtol=0)


def test_live_reference_is_refused_under_zero3(pairs, tmp_path):
    """ZeRO-3 partitions the frozen weights a live reference would share: a one-line error, nothing trained."""
    r = subprocess.run([*_launch("deepspeed_zero3.yaml"), *_train(pairs, tmp_path / "run", "tiny", 4),
                        "dpo.reference=live"], env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode != 0
    assert "error: dpo.reference=live: DeepSpeed ZeRO-3 partitions the weights" in r.stderr
    assert not (tmp_path / "run" / "final").exists()
