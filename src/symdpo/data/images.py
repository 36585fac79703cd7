"""Image loading with validation (pixels as models read them: ``symdpo.pixels``).

Validation happens once per image, before any record is written, so a bad image is either a clear
error or a counted skip, never a crash in the middle of an output file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from symdpo.data.errors import BadImageError
from symdpo.data.paths import resolve_inside
from symdpo.pixels import to_rgb

MAX_PIXELS = 64_000_000  # ~8000x8000: far above any benchmark image, far below a decompression bomb
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


def load_image(root: str | Path, rel: str, *, max_pixels: int = MAX_PIXELS,
               strict_extension: bool = True) -> Image.Image:
    """Return the validated, fully decoded RGB image ``root/rel``; raise BadImageError if unusable."""
    img = _open(root, rel, max_pixels=max_pixels, strict_extension=strict_extension)
    try:
        img.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise BadImageError(rel, "corrupt", f"image data unreadable ({e})") from None
    return to_rgb(img)
