"""What produced a run's results: package versions and the git commit of the symdpo checkout."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("symdpo", "torch", "transformers", "accelerate", "numpy", "pycocoevalcap", "easy-vqa")


def provenance() -> dict[str, Any]:
    """Return {"versions": {package: version}, "git_revision": commit (+ "-dirty") or None}."""
    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"versions": versions, "git_revision": git_revision()}


def git_revision(where: Path | None = None) -> str | None:
    """Return the commit of the symdpo checkout (with "-dirty" for local changes), or None outside git."""
    cwd = where or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")
