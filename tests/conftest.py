"""Fixtures shared by every test folder."""

from __future__ import annotations

import socket
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def torchrun():
    """Return a function: nproc -> the command prefix that launches `python -m ...` on that many CPU processes."""
    def launcher(nproc: int) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
                str(_free_port())]
    return launcher
