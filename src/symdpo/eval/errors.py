"""The error type of evaluation input problems: the CLI prints its message on one line, no traceback."""

from __future__ import annotations

from symdpo.errors import SymdpoError


class EvalError(SymdpoError):
    """Bad evaluation input (unknown task, missing path, too many shots, a changed run directory...)."""
