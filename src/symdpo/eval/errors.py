"""The error type of evaluation input problems: the CLI prints its message on one line, no traceback."""

from __future__ import annotations


class EvalError(ValueError):
    """Bad evaluation input (unknown task, missing path, too many shots, a changed run directory...)."""
