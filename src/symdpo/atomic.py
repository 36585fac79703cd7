"""Write files and directories atomically (a temp beside the target, then a rename), with the user's umask.

``tempfile`` creates its files 0600 and its directories 0700 whatever the umask; everything here gives them
the permissions a plain ``open``/``mkdir`` would (0666/0777 less the umask), so colleagues sharing a cluster
folder can read what a run wrote.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def umask() -> int:
    """Return the process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Return the mode a plain ``open(path, 'w')`` would give a new file."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Return the mode a plain ``mkdir`` would give a new directory."""
    return 0o777 & ~umask()


def apply_umask(path: str | Path) -> Path:
    """Give ``path`` (a file, or a folder and everything in it) the umask's permissions; return it.

    Needed after writers that choose their own mode: safetensors writes its files 0600.
    """
    path = Path(path)
    fmode, dmode = file_mode(), dir_mode()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not p.is_symlink():
            os.chmod(p, dmode if p.is_dir() else fmode)
    return path


def temp_file(target: str | Path) -> Path:
    """Return a new empty temp file beside ``target`` with the umask's permissions (the caller renames it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.fchmod(fd, file_mode())
    os.close(fd)
    return Path(tmp)


def temp_dir(target: str | Path) -> Path:
    """Return a new empty temp directory beside ``target`` with the umask's permissions."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, dir_mode())
    return tmp


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temp path that replaces ``path`` (fsynced) only if the block completes (else is removed)."""
    path = Path(path)
    tmp = temp_file(path)
    try:
        yield tmp
        apply_umask(tmp)  # the writer may have recreated the file with its own mode
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block completes (else is removed)."""
    path = Path(path)
    tmp = temp_dir(path)
    try:
        yield tmp
        apply_umask(tmp)
        if path.exists():
            # a directory cannot be replaced by rename in one step: move the old one aside first
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cache_root() -> Path:
    """Return the folder symdpo keeps its caches in (``SYMDPO_CACHE``, default ``~/.cache/symdpo``)."""
    return Path(os.environ.get("SYMDPO_CACHE", Path.home() / ".cache" / "symdpo"))
