"""The manifest beside a record file (``<records>.manifest.json``, written by ``symdpo data build``): where it
is, what it says, and the image folder it names, which every reader of records (training, evaluation's symbol
probes, the demo, export, inspect) takes unless told another."""

from __future__ import annotations

import json
from pathlib import Path

from symdpo.data.errors import DataError


def manifest_path(records: str | Path) -> Path:
    """Return the manifest path of a record file (``<records>.manifest.json``)."""
    return Path(f"{records}.manifest.json")


def read_manifest(records: str | Path) -> dict | None:
    """Return the manifest beside a record file, or None if there is none."""
    path = manifest_path(records)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def manifest_image_root(records: str | Path) -> Path | None:
    """Return the image folder the records' manifest names, or None (no manifest, or none named in it)."""
    root = (read_manifest(records) or {}).get("source", {}).get("image_root")
    return Path(root) if root else None


def image_root_of(records: str | Path, image_root: str | Path | None = None, *,
                  fix: str = "pass --image-root") -> Path:
    """Return the folder the records' image paths are relative to: ``image_root``, else the manifest's; with
    neither, raise DataError saying ``fix``."""
    if image_root is not None:
        return Path(image_root)
    root = manifest_image_root(records)
    if root is None:
        raise DataError(records, f"no manifest beside it names the image folder: {fix}")
    return root
