"""Pixels as the models read them: 8-bit RGB of any PIL image, and CLIP preprocessing without torchvision.

Below every layer: the Flamingo family preprocesses its images here, the data side's feature cache and image
loading (``data.images``) too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_rgb(img: Image.Image) -> Image.Image:
    """Return ``img`` as 8-bit RGB (palette transparency and alpha composited on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray((arr / top * 255).round().clip(0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def _clip_one(img: Image.Image, size: int) -> np.ndarray:
    """Return one image resized (shortest side, bicubic), centre-cropped, as (3, size, size) float32."""
    img = to_rgb(img)
    w, h = img.size
    # torchvision Resize(size) semantics (what open_clip, hence OpenFlamingo, used): int() truncation
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    img = img.resize((nw, nh), Image.BICUBIC)
    # torchvision CenterCrop rounds the offset; transformers floors it (they differ for odd margins)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return arr.transpose(2, 0, 1)


def preprocess_clip(images: Sequence[Image.Image], size: int = 224) -> torch.Tensor:
    """Return the CLIP pixel batch (N, 3, size, size) float32 of PIL images (OpenAI mean/std)."""
    import torch  # here: the CLI imports this module, and most commands need no torch
    if not images:
        return torch.empty(0, 3, size, size)
    return torch.from_numpy(np.stack([_clip_one(img, size) for img in images]))
