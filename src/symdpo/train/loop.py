"""The training loop shared by the SFT and DPO recipes: setup, steps, checkpoints, logging, final save.

Loss normalisation is global: each micro-batch's loss is divided by the *whole optimiser step's* pair and
token counts (known before any forward, from the deterministic batch order), times the process count to
undo the data-parallel gradient mean. A step's gradient is then the same whatever the split into processes
and micro-batches, so a 2-process run reproduces a 1-process run with the same global batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from symdpo.atomic import write_text
from symdpo.config import ConfigError
from symdpo.data.manifest import manifest_image_root
from symdpo.models import card
from symdpo.models.prompts import AGNOSTIC_END, KINDS
from symdpo.train import checkpointing as ckpt
from symdpo.train import sharding
from symdpo.train.config import TrainConfig
from symdpo.train.data import (
    RecordDataset,
    micro_batches,
    open_dataset,
    step_indices,
    steps_per_epoch,
)
from symdpo.train.params import adamw, trainable_named
from symdpo.train.tracking import Tracker, plot_curves, progress_bar


class Scorer(nn.Module):
    """The one module handed to accelerate: its forward is every model call of a micro-batch.

    Data-parallel wrappers (DDP, FSDP, DeepSpeed) see one forward per backward, whatever the scoring runs
    inside it (naive: two copies of each context; shared-prefix: one row per pair under a tree mask).
    """

    def __init__(self, lmm, *, shared_prefix: bool = True, max_tokens_per_row: int | None = None):
        super().__init__()
        self.model = lmm.module  # registered: the wrapper syncs and shards these parameters
        self._lmm = [lmm]  # a list, so the model (not a Module) is not registered twice
        self.shared_prefix, self.max_tokens_per_row = shared_prefix, max_tokens_per_row

    def forward(self, contexts: list, chosen: list[str], rejected: list[str] | None = None):
        lmm = self._lmm[0]
        if rejected is None:
            return lmm.answer_logps(contexts, chosen)
        return lmm.pair_logps(contexts, chosen, rejected, shared_prefix=self.shared_prefix,
                              max_tokens_per_row=self.max_tokens_per_row)


class Objective(Protocol):
    """What a recipe plugs into the loop."""

    plot_keys: list[str]

    def denominators(self, indices: list[int]) -> dict[str, float]:
        """Return the global counts of one optimiser step (pairs, answer tokens) used to normalise losses."""

    def micro_step(self, scorer: nn.Module, indices: list[int], totals: dict[str, float],
                   world: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return (loss to backpropagate, per-example tensors to gather for metrics)."""

    def metrics(self, gathered: dict[str, torch.Tensor], indices: list[int], totals: dict[str, float]) -> dict[str, float]:
        """Return the step's logged metrics from the per-example tensors of every process."""


@dataclass
class Setup:
    """Everything `run` needs, built by `setup`."""

    cfg: TrainConfig
    accelerator: object
    lmm: object
    dataset: RecordDataset
    groups: list  # the model's optimiser groups (models.interface.ParamGroup)
    total_steps: int
    eval_dataset: RecordDataset | None = None  # held-out records, scored every `eval_every` steps
    eval_every: int = 0
    extras: dict = field(default_factory=dict)


def make_accelerator(cfg: TrainConfig):
    """Return an Accelerator for ``cfg`` (CPU when no GPU; DeepSpeed is told the accumulation steps)."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType

    cpu = not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    accum = cfg.accumulation_steps(state.num_processes)
    # DeepSpeed steps its optimiser inside backward and must know the accumulation; the others are stepped here
    ds = state.distributed_type == DistributedType.DEEPSPEED or (cpu and sharding.launched_with("DEEPSPEED"))
    # cpu=False lets accelerate's state take a DeepSpeed launch on CPU processes too (the process group is
    # gloo's already); told cpu=True it would run the config as plain data parallelism
    accelerator = Accelerator(cpu=cpu and not ds, mixed_precision=cfg.precision,
                              gradient_accumulation_steps=accum if ds else 1)
    if cpu and state.distributed_type == DistributedType.MULTI_CPU and sharding.launched_with("FSDP"):
        sharding.enable_fsdp_on_cpu(accelerator)  # accelerate alone would run an FSDP config unsharded on CPU
    return accelerator


CONFIG_FILE = "train_config.json"  # the resolved config of the run, beside its checkpoints
# sections that may change between a run and its --resume: they change neither the data order nor the maths
RESUMABLE = ("logging", "checkpoint")
RESUMABLE_KEYS = ("data.micro_batch_size", "dpo.reference_batch_size", "output_dir")  # a run folder may move


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    """Return a nested dict as {'a.b.c': value}."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, object] = {}
    for k, v in node.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_changes(saved: dict, cfg: TrainConfig) -> list[str]:
    """Return the dotted keys whose value differs from the saved run's, except those a resume may change."""
    old, new = _flat(saved), _flat(cfg.model_dump(mode="json"))
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k) and k.split(".")[0] not in RESUMABLE
            and k not in RESUMABLE_KEYS]


def check_start(cfg: TrainConfig, resume: bool) -> None:
    """Refuse a start that would mix two runs, or a --resume that cannot resume (checked before any loading)."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out}: is a file; give a folder")
    latest = ckpt.latest_checkpoint(out)
    if not resume:
        if latest or (out / "final").exists():
            what = f"checkpoints ({latest.name})" if latest else "a finished run (final/)"
            raise ConfigError(f"output_dir {out} already holds {what}: pass --resume to continue it, or choose "
                              "another output_dir")
        return
    if not out.is_dir():
        raise ConfigError(f"--resume: output_dir {out} does not exist, so there is nothing to resume; drop "
                          "--resume to start a new run")
    if latest is None:
        raise ConfigError(f"--resume: output_dir {out} holds no complete checkpoint (the run stopped before its "
                          f"first save, every checkpoint.every_steps={cfg.checkpoint.every_steps}); drop --resume "
                          "and choose a new output_dir, or delete this one")
    saved = out / CONFIG_FILE
    if saved.is_file():
        changed = config_changes(json.loads(saved.read_text()), cfg)
        if changed:
            raise ConfigError(f"--resume: the config differs from the run in {out} in {', '.join(changed[:6])}"
                              f"{' ...' if len(changed) > 6 else ''}; resume with the run's config ({saved}) or "
                              "start a new run in another output_dir")


def setup(cfg: TrainConfig, *, resume: bool = False) -> Setup:
    """Load the model and data, choose the trainable set and size the schedule from the data length."""
    from accelerate.utils import set_seed

    from symdpo.models.registry import load_model

    check_start(cfg, resume)

    # transformers warns on every forward that `past_key_values` will be renamed: noise in a training log
    warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    with sharding.model_loading(accelerator):
        lmm = load_model(cfg.model.name, dtype=cfg.model.dtype)
    groups = lmm.prepare_training(cfg.training_spec())  # the model decides what trains and what decays
    prompts = {kind: lmm.prompt_format(kind, cfg.data.prompt_style) for kind in KINDS}
    # records are written with the model-agnostic end marker (the model writes its own): a chat format's
    # end-of-turn token inside a demonstration then never reads as a demonstration boundary
    # a record file, or TRL-layout preference data (a folder or parquet; data/conversations.py)
    dataset = open_dataset(cfg.data.path, image_root=cfg.data.image_root, max_records=cfg.data.max_records,
                           end_of_chunk=AGNOSTIC_END, prompts=prompts)
    eval_dataset = None
    if cfg.data.eval_path is not None:
        eval_dataset = open_dataset(cfg.data.eval_path, image_root=manifest_image_root(cfg.data.eval_path)
                                    or cfg.data.image_root, max_records=cfg.data.eval_max_records,
                                    end_of_chunk=AGNOSTIC_END, prompts=prompts)
    elif cfg.data.eval_fraction:
        eval_dataset = dataset.split_off(cfg.data.eval_fraction, cfg.seed)
        if cfg.data.eval_max_records:
            eval_dataset.records = eval_dataset.records[:cfg.data.eval_max_records]
    spe = steps_per_epoch(len(dataset), cfg.data.global_batch_size)
    total = cfg.optim.max_steps or cfg.optim.epochs * spe  # sized from the data, not from a constant
    every = cfg.logging.eval_every_steps or cfg.checkpoint.every_steps
    return Setup(cfg, accelerator, lmm, dataset, groups, total, eval_dataset, every if eval_dataset else 0)


def evaluate(s: Setup, objective: Objective, scorer: nn.Module) -> dict[str, float]:
    """Return the objective's metrics on the held-out records (no gradients, dropout off), keys prefixed eval/."""
    from accelerate.utils import gather_object

    acc, ds = s.accelerator, s.eval_dataset
    indices = list(range(len(ds)))
    totals = objective.denominators(indices)
    mine = indices[acc.process_index::acc.num_processes]
    parts: list[tuple[list[int], dict[str, list[float]]]] = []
    was_training = s.lmm.module.training
    s.lmm.train(False)
    with torch.no_grad():
        for b in range(0, len(mine), s.cfg.data.micro_batch_size):
            mb = mine[b:b + s.cfg.data.micro_batch_size]
            _, local = objective.micro_step(scorer, mb, totals, acc.num_processes)
            parts.append((mb, {k: v.detach().float().cpu().tolist() for k, v in local.items()}))
    s.lmm.train(was_training)
    gathered = [p for share in gather_object([parts]) for p in share]  # every process's micro-batches
    order = [i for mb, _ in gathered for i in mb]
    rank = sorted(range(len(order)), key=order.__getitem__)
    cat = {k: torch.tensor([x for _, local in gathered for x in local[k]])[rank] for k in gathered[0][1]}
    return {f"eval/{k}": v for k, v in objective.metrics(cat, sorted(order), totals).items()}


def make_scheduler(cfg: TrainConfig, optimizer, total_steps: int):
    """Return the LR schedule: warm-up over ``warmup_ratio`` of the real step count, then linear/cosine/constant."""
    from transformers import get_scheduler

    warmup = math.ceil(cfg.optim.warmup_ratio * total_steps)
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.optim.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


class _Stop:
    """SIGTERM (preemption) or Ctrl-C sets a flag; the loop saves at the end of the current step and stops.

    A second Ctrl-C while the step finishes stops at once (the last checkpoint is kept, the step is lost).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if signum == signal.SIGINT:
            print("\ninterrupted: saving a checkpoint at the end of this step (Ctrl-C again to stop now)",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


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
    start = 0
    if acc.is_main_process:
        ckpt.remove_partial(out)
    acc.wait_for_everyone()
    latest = ckpt.latest_checkpoint(out)
    check_start(cfg, resume)
    if acc.is_main_process and not resume:
        shutil.rmtree(out / "tensorboard", ignore_errors=True)  # a fresh run's events, not piled on older ones
        write_text(out / CONFIG_FILE, json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    if resume and latest:
        start = ckpt.load_checkpoint(acc, latest, model=s.lmm.module, optimizer=optimizer, scheduler=scheduler,
                                     sharded=sharded)["step"]
    tracker = Tracker(out, cfg.logging, resume_step=start, enabled=acc.is_main_process,
                      run_config=cfg.model_dump(mode="json"))
    world, rank = acc.num_processes, acc.process_index
    accum = cfg.accumulation_steps(world)
    if acc.is_main_process:  # what this launch actually ran with (a resumed run may use other processes)
        info = {"processes": world, "accumulation_steps": accum, "records": len(s.dataset),
                "total_steps": s.total_steps, "start_step": start, "distributed_type": str(acc.distributed_type)}
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "run.json", json.dumps(info, indent=2) + "\n")
    if acc.is_main_process:
        print_summary(s, sizes, start=start, world=world, accum=accum)
    stopped, done = False, start
    bar = progress_bar(s.total_steps, enabled=acc.is_main_process and cfg.logging.progress)
    with _Stop() as stop, bar:
        task = bar.add_task("train", total=s.total_steps, completed=start, loss="-", acc="-")
        for step in range(start, s.total_steps):
            idx = step_indices(len(s.dataset), step, global_batch=cfg.data.global_batch_size, seed=cfg.seed,
                               shuffle=cfg.data.shuffle)
            totals = objective.denominators(idx)
            parts: dict[str, list[torch.Tensor]] = {}
            mbs = micro_batches(idx, rank=rank, world=world, micro_batch=cfg.data.micro_batch_size)
            assert len(mbs) == accum
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


def save_final(s: Setup, objective: Objective) -> Path | None:
    """Write the fine-tuned model (trainable-only over its base; merged and full with LoRA) and the PNG."""
    acc, out = s.accelerator, Path(s.cfg.output_dir)
    acc.wait_for_everyone()
    if sharding.is_sharded(s.lmm.module):
        sharding.unshard_for_save(s.lmm.module, main=acc.is_main_process)  # collective: every process
    with sharding.gathered(acc, s.lmm.module):  # ZeRO-3: whole parameters on every process for the save
        if not acc.is_main_process:
            return None
        final = out / "final"
        s.lmm.save_finetune(final)  # trained rows and adapters merged; trainable weights over the base
        card.write_card(final, base=s.lmm.source or s.cfg.model.name, family=s.lmm.family,
                        train_config=s.cfg.model_dump(mode="json"), data_path=s.cfg.data.path)
    if s.cfg.logging.plot:
        plot_curves(out / "metrics.jsonl", out / "curves.png", objective.plot_keys)
    return final
