"""Shut down torch.distributed cleanly at the end of a launched (torchrun / accelerate launch) command."""

from __future__ import annotations


def close_process_group() -> None:
    """Wait for every process, then destroy the default process group (a no-op when none was started).

    Without this, gloo's worker threads outlive the interpreter's teardown and now and then abort the
    process at exit ("terminate called without an active exception") after the work itself succeeded.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
