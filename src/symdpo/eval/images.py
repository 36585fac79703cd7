"""Images of an evaluation: references, the blank stand-in, and a vision-feature cache.

Contexts are built from ``ImageRef``s, cheap to copy and compare; just before a batch is generated the refs
are turned into vision features, each image encoded once and then kept (in memory, bounded, and optionally on
disk with ``symdpo.data.features.FeatureCache``). Demonstration images recur across items (the query set is
2048 images), so most refs of a batch are cache hits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from symdpo.data.features import FeatureCache, content_hash
from symdpo.data.images import load_image

# The visual-reliance probe replaces images by this plain white picture (a "blank" page).
BLANK_SIZE = 224
BLANK_COLOR = (255, 255, 255)


@dataclass(frozen=True, order=True)
class ImageRef:
    """An image by its folder and its path relative to it (``rel`` only, for the blank image)."""

    root: str
    rel: str

    def path(self) -> Path:
        """Return the image file's path."""
        return Path(self.root) / self.rel


BLANK = ImageRef("", "<blank>")


def folder_images(folder: str | Path) -> list[ImageRef]:
    """Return refs to every image file under ``folder`` (recursively, sorted); an EvalError when there are none."""
    from symdpo.data.images import IMAGE_SUFFIXES
    from symdpo.eval.errors import EvalError

    root = Path(folder)
    if not root.is_dir():
        raise EvalError(f"--ood-images {folder}: not a folder; give a folder of images from another source")
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not rels:
        raise EvalError(f"--ood-images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it")
    return [ImageRef(str(root), rel) for rel in rels]


def blank_image() -> Image.Image:
    """Return the blank stand-in image (plain white RGB)."""
    return Image.new("RGB", (BLANK_SIZE, BLANK_SIZE), BLANK_COLOR)


def load_ref(ref: ImageRef) -> Image.Image:
    """Return the decoded RGB image of ``ref`` (validated: a missing or corrupt file raises BadImageError)."""
    return blank_image() if ref == BLANK else load_image(ref.root, ref.rel)


class ImageProvider:
    """Turns image refs into the context items a model takes: cached vision features when it can encode."""

    def __init__(self, model: Any, *, max_items: int = 4096, disk: FeatureCache | None = None) -> None:
        # features as context items only for families that take them (``takes_image_features``, Flamingo);
        # the others get PIL images and run their own processor
        self.encode = model.image_features if getattr(model, "takes_image_features", False) else None
        self.max_items, self.disk = max_items, disk
        self.memory: OrderedDict[ImageRef, Any] = OrderedDict()
        self.dtype: torch.dtype | None = None
        self.encoded = self.hits = 0

    def resolve(self, refs: Iterable[ImageRef]) -> dict[ImageRef, Any]:
        """Return {ref: context item} for the refs, encoding only images seen neither here nor on disk."""
        wanted = list(dict.fromkeys(refs))
        out: dict[ImageRef, Any] = {}
        missing = []
        for ref in wanted:
            if ref in self.memory:
                self.memory.move_to_end(ref)
                out[ref] = self.memory[ref]
                self.hits += 1
            else:
                missing.append(ref)
        if self.encode is None:
            out.update({ref: load_ref(ref) for ref in missing})
            return out
        from_disk, to_encode = self._from_disk(missing)
        out.update(from_disk)
        if to_encode:
            with torch.no_grad():
                feats = self.encode([load_ref(ref) for ref in to_encode]).detach()
            self.dtype = feats.dtype
            self.encoded += len(to_encode)
            for ref, f in zip(to_encode, feats, strict=True):
                out[ref] = f
                if self.disk is not None and ref != BLANK:
                    self.disk.put(content_hash(ref.path()), f.float().cpu().numpy())
        for ref in missing:
            self._remember(ref, out[ref])
        return out

    def _from_disk(self, refs: list[ImageRef]) -> tuple[dict[ImageRef, Any], list[ImageRef]]:
        """Return (features found in the disk cache, refs still to encode)."""
        if self.disk is None:
            return {}, refs
        if self.dtype is None and any(ref != BLANK for ref in refs):
            self.resolve([BLANK])  # learn the model's feature dtype before handing it float32 disk features
        found, rest = {}, []
        for ref in refs:
            arr = None if ref == BLANK else self.disk.get(content_hash(ref.path()))
            if arr is None:
                rest.append(ref)
            else:
                found[ref] = torch.from_numpy(arr).to(self.dtype or torch.float32)
                self.hits += 1
        return found, rest

    def _remember(self, ref: ImageRef, item: Any) -> None:
        """Keep ``item`` in memory, dropping the least recently used beyond ``max_items``."""
        self.memory[ref] = item
        while len(self.memory) > self.max_items:
            self.memory.popitem(last=False)
