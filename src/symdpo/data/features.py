"""A persistent vision-feature cache keyed by (image content hash, encoder id).

One ``.npy`` file per key in a sharded directory, each written to a temp file and ``os.replace``d into
place: two processes computing the same entry both write complete files and one wins, and a reader
never sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from symdpo.atomic import write_bytes
from symdpo.data.images import load_image
from symdpo.pixels import preprocess_clip

Encoder = Callable[[torch.Tensor], torch.Tensor]


def content_hash(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FeatureCache:
    """Feature vectors of one encoder, stored under ``root/<encoder slug>/<hash[:2]>/<hash>.npy``."""

    def __init__(self, root: str | Path, encoder_id: str) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id)[:60]
        digest = hashlib.sha256(encoder_id.encode()).hexdigest()[:10]
        self.dir = Path(root) / f"{slug}-{digest}"  # the digest keeps ids that slug alike apart
        self.encoder_id = encoder_id

    def path(self, key: str) -> Path:
        """Return the file of ``key`` (a content hash)."""
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """Return the cached features of ``key``, or None when absent or unreadable."""
        try:
            return np.load(self.path(key), allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError, EOFError):
            return None  # a damaged entry is recomputed and replaced, not fatal

    def put(self, key: str, features: np.ndarray) -> None:
        """Store ``features`` for ``key`` atomically."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(features), allow_pickle=False)
        write_bytes(target, buf.getvalue())


@torch.no_grad()
def encode_images(root: str | Path, images: Sequence[str], encoder: Encoder, *, cache: FeatureCache | None = None,
                  batch_size: int = 32, size: int = 224) -> np.ndarray:
    """Return (N, D) float32 features of the images (paths relative to ``root``), computing only cache misses."""
    keys = [content_hash(Path(root) / rel) for rel in images]  # root/rel was validated by the caller
    out: list[np.ndarray | None] = [cache.get(k) if cache else None for k in keys]
    missing = [i for i, f in enumerate(out) if f is None]
    for start in range(0, len(missing), batch_size):
        chunk = missing[start:start + batch_size]
        pixels = preprocess_clip([load_image(root, images[i]) for i in chunk], size)
        feats = encoder(pixels)
        if feats.ndim != 2 or feats.shape[0] != len(chunk):
            raise ValueError(f"encoder must return (N, D) features, got shape {tuple(feats.shape)}")
        feats = feats.detach().float().cpu().numpy()
        for i, f in zip(chunk, feats, strict=True):
            out[i] = f
            if cache:
                cache.put(keys[i], f)
    if not images:
        return np.zeros((0, 0), np.float32)
    return np.stack(out).astype(np.float32, copy=False)
