"""symdpo's errors: the one base class of every error a user can fix, and how any exception reads as one line.

Each layer keeps its own error type (ConfigError, DataError, EvalError, ModelError, InferenceError, UsageError),
all `SymdpoError`s, so the CLI's boundary (``symdpo.boundary``) prints any of them as one line without knowing
the layers. ``SYMDPO_DEBUG=1`` lets the traceback through instead.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from typing import Any

DEBUG_VAR = "SYMDPO_DEBUG"
_DEBUG_HINT = f"rerun with {DEBUG_VAR}=1 for the traceback"


class SymdpoError(ValueError):
    """An error a user can fix (bad input, config or request); its message says what and what to do."""


class UsageError(SymdpoError):
    """A command-line option with a value it cannot take (exit status 2, like click's own usage errors)."""


def debugging() -> bool:
    """Return whether tracebacks should be shown (``SYMDPO_DEBUG`` set to anything but empty or 0)."""
    return os.environ.get(DEBUG_VAR, "") not in ("", "0")


def option_name(loc: Sequence[Any], names: dict[str, str] | None = None) -> str:
    """Return the command-line option a pydantic error location stands for (``('symbols', 'k_min')`` -> ``--k-min``)."""
    names_in_loc = [str(p) for p in loc if not isinstance(p, int)]  # (demo_labels, 0): the list's option
    if not names_in_loc:
        return ""
    field = names_in_loc[-1]
    if names and field in names:
        return names[field]
    return "--" + field.replace("_", "-")


def validation_message(exc: Any, names: dict[str, str] | None = None) -> str:
    """Return a pydantic ValidationError of command-line options as one line naming the options (no URL)."""
    parts = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {str(got)[:60]!r})"
        name = option_name(err["loc"], names)
        parts.append(f"{name}: {msg}{shown}" if name else msg)
    return "; ".join(parts)


_OS_HINTS = {
    errno.ENOENT: "not found: check the path",
    errno.EISDIR: "is a directory: give a file path",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EEXIST: "already exists: remove it or choose another path",
    errno.EACCES: "permission denied: check the folder's permissions or choose another path",
    errno.EPERM: "operation not permitted: check the folder's permissions or choose another path",
    errno.ENOSPC: "no space left on the device: free some space, then rerun (finished work is kept)",
    errno.EROFS: "read-only file system: choose a writable path",
    errno.ENAMETOOLONG: "file name too long",
}


def os_message(exc: OSError) -> str:
    """Return an OSError as '<path>: <what is wrong and what to do>'."""
    hint = _OS_HINTS.get(exc.errno or -1, exc.strerror or str(exc))
    path = exc.filename2 if exc.errno == errno.EISDIR and exc.filename2 else exc.filename
    return f"{path}: {hint}" if path else f"{hint} ({exc})"


def one_line(text: str) -> str:
    """Return a multi-line message (a heading, then one line per problem) as one line."""
    return re.sub(r"\s*\n\s*", "; ", re.sub(r":\s*\n\s*", ": ", text.strip()))


def describe(exc: BaseException) -> str:
    """Return the one line the CLI prints for ``exc``."""
    from pydantic import ValidationError

    if isinstance(exc, SymdpoError):
        text = one_line(str(exc))
    elif isinstance(exc, ValidationError):
        text = validation_message(exc)
    elif isinstance(exc, OSError) and exc.errno is not None:
        text = os_message(exc)
    elif isinstance(exc, re.error):
        text = f"invalid regular expression {exc.pattern!r}: {exc.msg} at position {exc.pos}"
    elif isinstance(exc, (ValueError, FileNotFoundError)):
        text = str(exc)
    elif isinstance(exc, ImportError) and exc.name:
        text = f"the optional package {exc.name!r} is not installed: pip install {exc.name}"
    elif isinstance(exc, MemoryError):
        text = "out of memory: lower the batch size or --num-samples, or use a smaller model"
    else:
        text = f"unexpected {type(exc).__name__}: {exc} ({_DEBUG_HINT}, and please report it)"
    return " ".join(text.split()) or f"{type(exc).__name__} ({_DEBUG_HINT})"
