"""Sharded training in the loop: the same sharding on CPU processes as on GPUs, the units the model names,
their extra methods, and the full weights of the final save.

accelerate prepares FSDP2 (torch's ``fully_shard``) or DeepSpeed for the model; what is around it is ours:

* on CPU processes accelerate turns an FSDP or DeepSpeed launch config into plain data parallelism (its
  state enables them only for accelerator devices), so a CPU run would test nothing; `enable_fsdp_on_cpu`
  gives the state FSDP with the plugin the launcher described, and FSDP2 then shards over gloo exactly as
  over NCCL (DeepSpeed: `train.setup.make_accelerator` lets accelerate's state take the launch);
* `prepare` is accelerate's prepare plus what each engine needs: FSDP's units are the model's
  (``shard_units`` of the interface), not a class list written into the launch config for one model;
* a sharded unit gathers its weights around ``forward`` only: a model calling another method of a unit
  (Flamingo's cross-attention computes its media keys/values once per call, outside the block's forward)
  names it in its ``sharded_methods`` (per unit class), and `prepare` hooks it as well;
* the final save needs whole tensors: `unshard_for_save` gathers the full state dict (a collective: every
  process calls it) and puts the full tensors back into the model on the main process.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from torch import nn

from symdpo.config import ConfigError


def launched_with(engine: str) -> bool:
    """Return whether ``accelerate launch`` was given an ``engine`` ("FSDP", "DEEPSPEED") config (it says so in
    the environment of every process)."""
    return os.environ.get(f"ACCELERATE_USE_{engine}", "false").lower() == "true"


def enable_fsdp_on_cpu(accelerator) -> None:
    """Make ``accelerator`` (on CPU processes) shard with FSDP2 as the launch config asks."""
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # read from the FSDP_* variables accelerate launch sets
    if plugin.fsdp_version != 2:
        raise ConfigError("FSDP on CPU processes needs fsdp_version: 2 (torch's fully_shard) in the accelerate "
                          "config; FSDP1 runs on GPUs only")
    # both shared states: accelerate copies the process state into the accelerator state whenever it makes one
    PartialState().distributed_type = accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin


def prepare(accelerator, lmm, scorer: nn.Module, optimizer, *, micro_batch_size: int):
    """Return (scorer, optimizer, trainable parameters) prepared by accelerate for the launch's engine.

    FSDP shards the model's own units and gathers them for their extra methods too; DeepSpeed is told the
    micro-batch (no accelerate dataloader tells it). The parameters are taken after preparation: sharding
    replaces them.
    """
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        _use_model_units(accelerator, lmm)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch_size
    scorer, optimizer = accelerator.prepare(scorer, optimizer)
    _register_sharded_methods(scorer, lmm.sharded_methods)
    return scorer, optimizer, [p for g in optimizer.param_groups for p in g["params"]]


def _use_model_units(accelerator, lmm) -> None:
    """Make FSDP's transformer-based wrapping shard the units the model names (``shard_units``), whatever
    model the launch config was written for."""
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None:
        return
    policy = plugin.auto_wrap_policy
    if getattr(policy, "func", policy) is transformer_auto_wrap_policy or policy is None:
        plugin.auto_wrap_policy = transformer_auto_wrap_policy
        plugin.transformer_cls_names_to_wrap = list(lmm.shard_units)


@contextmanager
def model_loading(accelerator):
    """Return a context for loading the model as the launch's engine wants it built.

    FSDP with ``fsdp_cpu_ram_efficient_loading: true``: only the main process materialises the weights; the
    others build the parameters on the meta device (buffers stay real: the non-persistent ones, such as rotary
    frequencies, are in no state dict) and get the main process's weights when `prepare` shards the model
    (accelerate's ``fsdp2_load_full_state_dict``), so a large preset needs one full copy per node, not one
    per GPU.

    DeepSpeed ZeRO-3 with ``zero3_init_flag: false``: the model is built whole on every process and
    partitioned when prepared, as the flag says. accelerate registers its DeepSpeed config with transformers
    whatever the flag, and transformers then builds every model under ``deepspeed.zero.Init``: a model built
    from a config gets other random weights than without DeepSpeed, and our strict checkpoint loading meets
    partitioned (empty) tensors.
    """
    fsdp = getattr(accelerator.state, "fsdp_plugin", None)
    if fsdp is not None and fsdp.cpu_ram_efficient_loading and not accelerator.is_main_process:
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=False):
            yield
        print(f"process {accelerator.process_index}: parameters built on the meta device (cpu_ram_efficient_loading); "
              "the main process's weights come when the model is sharded", file=sys.stderr, flush=True)
        return
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3 or plugin.zero3_init_flag:
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def has_weights(model: nn.Module) -> bool:
    """Return whether this process holds ``model``'s weights (not so on the meta device before FSDP's sharded load)."""
    return not any(p.is_meta for p in model.parameters())


def is_zero3(accelerator) -> bool:
    """Return whether ``accelerator`` partitions the parameters with DeepSpeed ZeRO-3."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and plugin.zero_stage == 3


def is_sharded(model: nn.Module) -> bool:
    """Return whether ``model`` holds FSDP2 units."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def _register_sharded_methods(model: nn.Module, methods: dict[type[nn.Module], tuple[str, ...]]) -> None:
    """Let FSDP2 gather a unit's weights for the ``methods`` the model names for its class too."""
    from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method

    for module in model.modules():
        if isinstance(module, FSDPModule):
            for cls, names in methods.items():
                for name in names if isinstance(module, cls) else ():
                    register_fsdp_forward_method(module, name)


@contextmanager
def gathered(accelerator, model: nn.Module):
    """Return a context in which a ZeRO-3 model's parameters are whole on every process (read-only)."""
    if not is_zero3(accelerator):
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        yield


def unshard_for_save(model: nn.Module, *, main: bool) -> None:
    """Gather the full weights of a sharded ``model`` (every process calls this) and, on the main process,
    replace its sharded parameters by the full tensors, so it saves like an unsharded model.

    The model is not trained further afterwards (its sharding hooks still point at the old shards).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not main:
        return
    new: dict[int, nn.Parameter] = {}  # tied parameters (one tensor under two names) stay tied
    for name, param in list(model.named_parameters(remove_duplicate=False)):
        if id(param) not in new:
            new[id(param)] = nn.Parameter(full[name].to(param.dtype), requires_grad=param.requires_grad)
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, leaf, new[id(param)])
