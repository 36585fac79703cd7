"""DDP vs FSDP2 vs DeepSpeed ZeRO-2 vs ZeRO-3: DPO step time and peak memory, each launched as a user does.

    python benchmarks/scale_gpu.py                   # OpenFlamingo-3B-sized, 1 GPU, ~3-4 min on an H100/H200
    python benchmarks/scale_gpu.py --gpus 8          # the same on 8 GPUs (sharding then saves memory)
    python benchmarks/scale_gpu.py --size tiny       # the same code on 2 CPU processes (gloo), seconds

Each engine runs in its own ``accelerate launch --config_file configs/accelerate/<engine>.yaml`` (the shipped
configs; bf16 on GPUs, fp32 on CPU) of this file with ``--worker``: the training loop's own accelerator set-up
(`train.setup.make_accelerator`, `train.sharding`), the model of benchmarks/dpo_step_gpu.py
(``common.build_of3b``: random weights with OpenFlamingo-3B's shapes; OpenFlamingo's trainable set), ``--pairs``
pairs per step of 1024-token contexts with 8 images, precomputed reference log-probs, AdamW. Step time is the
median over the timed steps (after two warm-up steps); peak memory is ``torch.cuda.max_memory_allocated`` on
GPU 0 (the CPU run prints the process's peak RSS instead). On one GPU nothing is sharded: the table shows each engine's overhead; memory savings need
``--gpus`` > 1. The last line is the headline: FSDP2's and ZeRO-3's peak memory and step time against DDP.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from common import OF3B_SIZES, ROOT, build_of3b, maxrss_gib, optimizer, pairs, peak_gib, reset_peak, timed

ENGINES = {"DDP": "ddp.yaml", "FSDP2": "fsdp.yaml", "ZeRO-2": "deepspeed_zero2.yaml", "ZeRO-3": "deepspeed_zero3.yaml"}


def worker(args) -> None:
    """Run the DPO steps under the launcher's engine; write {'step_s', 'peak_gib'} to ``args.out`` (rank 0)."""
    from symdpo.train import sharding
    from symdpo.train.losses import symdpo_loss
    from symdpo.train.scorer import Scorer
    from symdpo.train.setup import make_accelerator

    gpu = torch.cuda.is_available()
    acc = make_accelerator(SimpleNamespace(precision="bf16" if gpu else "no", accumulation_steps=lambda n: 1))
    size = OF3B_SIZES[args.size]
    with sharding.model_loading(acc):
        lmm = build_of3b(size, acc.device, dtype="bfloat16" if gpu else "float32")
    data, _ = pairs(lmm, args.pairs, size["context"], size["image_size"])
    opt = optimizer(lmm, fused=gpu)
    scorer, opt, params = sharding.prepare(acc, lmm, Scorer(lmm), opt, micro_batch_size=args.pairs)
    contexts, chosen, rejected = data

    def one_step() -> None:
        pc, pr, nc, nr = scorer(contexts, chosen, rejected)
        rc, rr = pc.detach() - 0.1, pr.detach() + 0.1  # stands for the stored reference log-probs
        loss = symdpo_loss(pc.float(), pr.float(), rc.float(), rr.float(), nc, nr).loss
        acc.backward(loss)
        acc.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    reset_peak(acc.device)
    times = [timed(one_step, acc.device)[0] for _ in range(args.steps + 2)][2:]  # the first two: warm-up
    peak = peak_gib(acc.device) if gpu else maxrss_gib(resource.getrusage(resource.RUSAGE_SELF))
    if acc.is_main_process:
        Path(args.out).write_text(json.dumps({"step_s": statistics.median(times), "peak_gib": peak,
                                              "distributed": acc.distributed_type.name}))
    acc.wait_for_everyone()


def launch(engine: str, args, out: Path) -> dict:
    """Return the worker's figures for ``engine`` launched through its shipped accelerate config."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    gpu = torch.cuda.is_available()
    procs = args.gpus if gpu else 2
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs/accelerate" / ENGINES[engine]), "--num_processes", str(procs),
           "--main_process_port", port, "--mixed_precision", "bf16" if gpu else "no",
           str(Path(__file__).resolve()), "--worker", "--size", args.size, "--steps", str(args.steps),
           "--pairs", str(args.pairs), "--out", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **({} if gpu else {"OMP_NUM_THREADS": "1"})}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(out.read_text())


def main() -> None:
    """Print the table of every engine and, last, FSDP2 and ZeRO-3 against DDP."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="of3b", choices=["of3b", "tiny"])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    gpu = torch.cuda.is_available()
    where = f"{args.gpus} x {torch.cuda.get_device_name(0)}" if gpu else "2 CPU processes (gloo)"
    memory = "peak GiB (GPU 0)" if gpu else "peak RSS GiB (rank 0)"
    print(f"{args.size} Flamingo, {args.pairs} pairs per step per process, {args.steps} timed steps, {where}")
    print(f"{'engine':<8} {'launch config':<24} {'step s':>8} {memory:>22}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ENGINES:
            res = results[engine] = launch(engine, args, Path(tmp) / f"{engine}.json")
            if "error" in res:
                print(f"{engine:<8} {ENGINES[engine]:<24} failed: {res['error']}")
            else:
                print(f"{engine:<8} {ENGINES[engine]:<24} {res['step_s']:8.3f} {res['peak_gib']:22.2f}")
    base = results["DDP"]
    parts = []
    for engine in ("FSDP2", "ZeRO-3"):
        res = results[engine]
        if "error" not in res and "error" not in base:
            parts.append(f"{engine} {res['peak_gib'] / base['peak_gib']:.2f}x memory, "
                         f"{res['step_s'] / base['step_s']:.2f}x step time")
    print("vs DDP: " + ("; ".join(parts) if parts else "no comparison (a run failed)"))


if __name__ == "__main__":
    main()
