"""The training loop shared by the SFT and DPO recipes: steps, held-out scores, checkpoints, logging, final save.

Loss normalisation is global: each micro-batch's loss is divided by the *whole optimiser step's* pair and
token counts (known before any forward, from the deterministic batch order), times the process count to
undo the data-parallel gradient mean. A step's gradient is then the same whatever the split into processes
and micro-batches, so a 2-process run reproduces a 1-process run with the same global batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from symdpo.atomic import write_text
from symdpo.train import checkpointing as ckpt
from symdpo.train import sharding
from symdpo.train.config import TrainConfig
from symdpo.train.data import micro_batches, step_indices
from symdpo.train.final import save_final
from symdpo.train.heldout import evaluate
from symdpo.train.objective import Objective
from symdpo.train.params import adamw, trainable_named
from symdpo.train.resume import start_step
from symdpo.train.scorer import Scorer
from symdpo.train.setup import Setup
from symdpo.train.signals import StopRequest
from symdpo.train.tracking import Tracker, progress_bar


def make_scheduler(cfg: TrainConfig, optimizer, total_steps: int):
    """Return the LR schedule: warm-up over ``warmup_ratio`` of the real step count, then linear/cosine/constant."""
    from transformers import get_scheduler

    warmup = math.ceil(cfg.optim.warmup_ratio * total_steps)
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.optim.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def train_step(s: Setup, objective: Objective, step: int, scorer, optimizer, scheduler, params) -> dict[str, float]:
    """Run optimiser step ``step`` (its micro-batches on this process, one gradient sync); return its metrics."""
    cfg, acc = s.cfg, s.accelerator
    world = acc.num_processes
    idx = step_indices(len(s.dataset), step, global_batch=cfg.data.global_batch_size, seed=cfg.seed,
                       shuffle=cfg.data.shuffle)
    totals = objective.denominators(idx)
    parts: dict[str, list[torch.Tensor]] = {}
    mbs = micro_batches(idx, rank=acc.process_index, world=world, micro_batch=cfg.data.micro_batch_size)
    assert len(mbs) == cfg.accumulation_steps(world)
    for j, mb in enumerate(mbs):
        # gradients are all-reduced once per optimiser step, on its last micro-batch
        sync = contextlib.nullcontext() if j == len(mbs) - 1 else acc.no_sync(scorer)
        with sync:
            loss, local = objective.micro_step(scorer, mb, totals, world)
            # accelerate divides by its accumulation count (DeepSpeed only); our loss is already global
            acc.backward(loss * acc.gradient_accumulation_steps)
        for k, v in local.items():
            parts.setdefault(k, []).append(v.detach().float())
    grad_norm = None
    if cfg.optim.max_grad_norm:
        grad_norm = acc.clip_grad_norm_(params, cfg.optim.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    gathered = {k: acc.gather(torch.cat(v)).cpu() for k, v in parts.items()}
    metrics = objective.metrics(gathered, idx, totals)
    metrics["lr"] = scheduler.get_last_lr()[0]
    if grad_norm is not None:
        metrics["grad_norm"] = float(grad_norm)
    return metrics


def run(s: Setup, objective: Objective, *, resume: bool = False, on_step: Callable[[int], None] | None = None,
        eval_objective: Objective | None = None) -> dict:
    """Train to the end (or to SIGTERM / Ctrl-C); return {'step', 'stopped', 'signal', 'final'}."""
    from accelerate.utils import DistributedType

    cfg, acc = s.cfg, s.accelerator
    out = Path(cfg.output_dir)
    sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    scorer = Scorer(s.lmm, shared_prefix=cfg.dpo.shared_prefix, max_tokens_per_row=cfg.data.max_tokens_per_batch)
    optimizer = adamw(s.groups, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps,
                      fused=acc.device.type == "cuda")
    scheduler = make_scheduler(cfg, optimizer, s.total_steps)  # not prepared: accelerate would step it per process
    sizes = model_sizes(s)  # before sharding: FSDP and ZeRO-3 leave each process a part of each tensor
    if cfg.compile:  # per layer, before the wrappers (FSDP2 shards the compiled layers as they are)
        from symdpo.models.compiled import compile_layers

        compile_layers(s.lmm)
    scorer, optimizer, params = sharding.prepare(acc, s.lmm, scorer, optimizer,
                                                 micro_batch_size=cfg.data.micro_batch_size)
    start = start_step(acc, cfg, resume, model=s.lmm.module, optimizer=optimizer, scheduler=scheduler,
                       sharded=sharded)
    tracker = Tracker(out, cfg.logging, resume_step=start, enabled=acc.is_main_process,
                      run_config=cfg.model_dump(mode="json"))
    if acc.is_main_process:
        announce(s, sizes, start=start)
    stopped, done = False, start
    bar = progress_bar(s.total_steps, enabled=acc.is_main_process and cfg.logging.progress)
    with StopRequest() as stop, bar:
        task = bar.add_task("train", total=s.total_steps, completed=start, loss="-", acc="-")
        for step in range(start, s.total_steps):
            metrics = train_step(s, objective, step, scorer, optimizer, scheduler, params)
            done = step + 1
            if eval_objective is not None and (done % s.eval_every == 0 or done == s.total_steps):
                metrics.update(evaluate(s, eval_objective, scorer))
            if done % cfg.logging.every_steps == 0 or done == s.total_steps or "eval/loss" in metrics:
                tracker.log(done, metrics)
            bar.update(task, completed=done, loss=f"{metrics['loss']:.4f}",
                       acc=f"{metrics.get('rewards/accuracies', float('nan')):.2f}")
            stop_now = bool(acc.reduce(torch.tensor([float(stop.requested)], device=acc.device), "sum").item())
            if done % cfg.checkpoint.every_steps == 0 or stop_now:
                ckpt.save_checkpoint(acc, out, done, model=s.lmm.module, optimizer=optimizer, scheduler=scheduler,
                                     trainable=trainable_named(s.lmm.module), state={"total_steps": s.total_steps},
                                     keep_last=cfg.checkpoint.keep_last, sharded=sharded)
            if on_step:
                on_step(done)
            if stop_now:
                stopped = True
                break
    tracker.close()
    final = None
    if not stopped:
        final = save_final(s, objective)
    acc.wait_for_everyone()
    return {"step": done, "stopped": stopped, "signal": stop.signum if stopped else None, "final": final}


def model_sizes(s: Setup) -> tuple[int, int, str]:
    """Return (trainable parameters, all parameters, the policy) of the unsharded model."""
    trainable = sum(p.numel() for g in s.groups for p in g.params)
    total = sum(p.numel() for p in s.lmm.module.parameters())
    return trainable, total, s.cfg.model.policy or s.lmm.info().default_policy


def announce(s: Setup, sizes: tuple[int, int, str], *, start: int) -> None:
    """Write run.json (what this launch runs with: a resumed run may use other processes) and print the summary."""
    acc, out = s.accelerator, Path(s.cfg.output_dir)
    world = acc.num_processes
    accum = s.cfg.accumulation_steps(world)
    info = {"processes": world, "accumulation_steps": accum, "records": len(s.dataset),
            "total_steps": s.total_steps, "start_step": start, "distributed_type": str(acc.distributed_type)}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "run.json", json.dumps(info, indent=2) + "\n")
    print_summary(s, sizes, start=start, world=world, accum=accum)


def print_summary(s: Setup, sizes: tuple[int, int, str], *, start: int, world: int, accum: int) -> None:
    """Print what the run is about to do: data, steps, batch, trainable parameters, where its files go."""
    cfg, out = s.cfg, Path(s.cfg.output_dir)
    trainable, total, policy = sizes
    epochs = s.total_steps * cfg.data.global_batch_size / len(s.dataset)
    lines = [
        f"model {cfg.model.name} ({s.lmm.family}): {trainable:,} of {total:,} parameters train "
        f"({100 * trainable / max(total, 1):.2f}%, policy {policy})",
        f"data {cfg.data.path}: {len(s.dataset):,} records"
        + (f", eval {len(s.eval_dataset):,} records every {s.eval_every} steps" if s.eval_dataset else ""),
        f"steps {start + 1}..{s.total_steps} ({epochs:.2f} epochs) of {cfg.data.global_batch_size} records = "
        f"{world} process(es) x {accum} micro-batch(es) x {cfg.data.micro_batch_size}",
        f"logs {out / 'metrics.jsonl'}" + (f", {out / 'tensorboard'}" if cfg.logging.tensorboard else "")
        + f"; checkpoints every {cfg.checkpoint.every_steps} steps in {ckpt.checkpoint_root(out)}; "
        f"the model at the end in {out / 'final'}",
    ]
    if start >= s.total_steps:
        lines[2] = f"the run already reached its last step ({s.total_steps}): only the final model is written again"
    elif start:
        lines.insert(2, f"resuming from step {start}")
    print("\n".join(lines), file=sys.stderr, flush=True)
