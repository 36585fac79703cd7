"""A stop asked by SIGTERM (preemption) or Ctrl-C, taken at the end of the current training step."""

from __future__ import annotations

import signal
import sys


class StopRequest:
    """SIGTERM (preemption) or Ctrl-C sets a flag; the loop saves at the end of the current step and stops.

    A second Ctrl-C while the step finishes stops at once (the last checkpoint is kept, the step is lost).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Return whether a stop was asked."""
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
