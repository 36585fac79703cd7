"""`torch.compile` of a model's repeated layers (its shard units), as torchtune compiles per layer.

Compiling each decoder layer, cross-attention block and vision layer, rather than the whole forward, keeps
the model's Python (tokenisation, image bookkeeping, hooks, data-dependent masking) in eager mode, works
under FSDP2 and DDP alike, and compiles each distinct layer once. Shapes are dynamic, so a new sequence
length or batch size does not recompile; `recompilations` reports how many graphs were built.
"""

from __future__ import annotations

import torch


def compile_layers(lmm, *, dynamic: bool = True) -> int:
    """Compile, in place, every submodule of ``lmm.module`` whose class is one of its shard units; return how many."""
    units = set(lmm.shard_units)
    count = 0
    for module in lmm.module.modules():
        if type(module).__name__ in units:
            module.compile(dynamic=dynamic)
            count += 1
    if not count:
        raise ValueError(f"{lmm.family}: no layer to compile (shard units {sorted(units)} not found in the model)")
    return count


def graphs_built() -> int:
    """Return how many graphs torch.compile has built in this process (a rise after warm-up is a recompilation)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def reset_compiled() -> None:
    """Forget compiled graphs and counters (benchmarks and tests compare runs in one process)."""
    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
