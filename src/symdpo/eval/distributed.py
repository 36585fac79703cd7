"""Which shard this process evaluates: accelerate's PartialState under a launcher, else explicit numbers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shard:
    """This process's rank among ``world`` processes; ``state`` is accelerate's when it launched us."""

    rank: int = 0
    world: int = 1
    state: Any = None

    def finish(self) -> None:
        """Block until every process gets here, then shut the process group down (a no-op without a launcher)."""
        if self.state is not None:
            from symdpo.distributed import close_process_group

            close_process_group()


def current_shard(rank: int | None = None, world: int | None = None) -> Shard:
    """Return the shard given explicitly, or the one accelerate/torchrun set up (WORLD_SIZE > 1), or (0, 1)."""
    if rank is not None or world is not None:
        return Shard(rank or 0, world or 1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())  # without cpu=True it ignores a CPU launch
        return Shard(state.process_index, state.num_processes, state)
    return Shard()
