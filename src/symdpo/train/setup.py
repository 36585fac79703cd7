"""What a training run is built from: the accelerator, the model with its trainable set, the data and the schedule."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from symdpo.data.manifest import manifest_image_root
from symdpo.models.prompts import AGNOSTIC_END, KINDS
from symdpo.train import sharding
from symdpo.train.config import TrainConfig
from symdpo.train.data import RecordDataset, open_dataset, steps_per_epoch
from symdpo.train.resume import check_start


@dataclass
class Setup:
    """Everything `loop.run` needs, built by `setup`."""

    cfg: TrainConfig
    accelerator: object
    lmm: object
    dataset: RecordDataset
    groups: list  # the model's optimiser groups (models.interface.ParamGroup)
    total_steps: int
    eval_dataset: RecordDataset | None = None  # held-out records, scored every `eval_every` steps
    eval_every: int = 0


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


def _held_out(cfg: TrainConfig, dataset: RecordDataset, prompts: dict) -> RecordDataset | None:
    """Return the held-out records: data.eval_path's, or data.eval_fraction split off ``dataset``; None without."""
    if cfg.data.eval_path is not None:
        return open_dataset(cfg.data.eval_path, image_root=manifest_image_root(cfg.data.eval_path)
                            or cfg.data.image_root, max_records=cfg.data.eval_max_records,
                            end_of_chunk=AGNOSTIC_END, prompts=prompts)
    if not cfg.data.eval_fraction:
        return None
    eval_dataset = dataset.split_off(cfg.data.eval_fraction, cfg.seed)
    if cfg.data.eval_max_records:
        eval_dataset.records = eval_dataset.records[:cfg.data.eval_max_records]
    return eval_dataset


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
    eval_dataset = _held_out(cfg, dataset, prompts)
    spe = steps_per_epoch(len(dataset), cfg.data.global_batch_size)
    total = cfg.optim.max_steps or cfg.optim.epochs * spe  # sized from the data, not from a constant
    every = cfg.logging.eval_every_steps or cfg.checkpoint.every_steps
    return Setup(cfg, accelerator, lmm, dataset, groups, total, eval_dataset, every if eval_dataset else 0)
