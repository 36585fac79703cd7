"""Image loading with validation, and CLIP preprocessing without torchvision.

Validation happens once per image, before any record is written, so a bad image is either a clear
error or a counted skip, never a crash in the middle of an output file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from symdpo.data.errors import BadImageError
from symdpo.data.paths import resolve_inside

MAX_PIXELS = 64_000_000  # ~8000x8000: far above any benchmark image, far below a decompression bomb
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_FORMAT_OF_SUFFIX = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP",
                     ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
IMAGE_SUFFIXES = tuple(_FORMAT_OF_SUFFIX)  # the file names read as images


def _open(root: str | Path, rel: str, *, max_pixels: int, strict_extension: bool) -> Image.Image:
    """Return the opened (not yet decoded) image ``root/rel`` after the header checks."""
    path = resolve_inside(root, rel)
    if not path.is_file():
        raise BadImageError(rel, "missing", "image file not found")
    if path.stat().st_size == 0:
        raise BadImageError(rel, "empty", "zero-byte image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit below
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise BadImageError(rel, "too_large", f"image too large ({e})") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadImageError(rel, "corrupt", f"not a readable image ({e})") from None
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise BadImageError(rel, "too_large", f"image too large ({w}x{h} > {max_pixels} pixels)")
    if w == 0 or h == 0:
        img.close()
        raise BadImageError(rel, "corrupt", f"image has no pixels ({w}x{h})")
    expected = _FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if strict_extension and expected and img.format != expected:
        img.close()
        raise BadImageError(rel, "wrong_extension",
                            f"content is {img.format} but the extension {path.suffix!r} says {expected}")
    return img


def check_image(root: str | Path, rel: str, *, decode: bool = False, max_pixels: int = MAX_PIXELS,
                strict_extension: bool = True) -> tuple[int, int]:
    """Return (width, height) of a usable image, reading only its header unless ``decode``; else raise."""
    img = _open(root, rel, max_pixels=max_pixels, strict_extension=strict_extension)
    with img:
        if decode:
            try:
                img.load()
            except (OSError, ValueError, SyntaxError) as e:
                raise BadImageError(rel, "corrupt", f"image data unreadable ({e})") from None
        return img.size


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


def load_image(root: str | Path, rel: str, *, max_pixels: int = MAX_PIXELS,
               strict_extension: bool = True) -> Image.Image:
    """Return the validated, fully decoded RGB image ``root/rel``; raise BadImageError if unusable."""
    img = _open(root, rel, max_pixels=max_pixels, strict_extension=strict_extension)
    try:
        img.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise BadImageError(rel, "corrupt", f"image data unreadable ({e})") from None
    return to_rgb(img)


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
    if not images:
        return torch.empty(0, 3, size, size)
    return torch.from_numpy(np.stack([_clip_one(img, size) for img in images]))
