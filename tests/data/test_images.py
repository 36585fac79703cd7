"""Image loading/validation and CLIP preprocessing (compared with transformers' CLIPImageProcessor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from symdpo.data.errors import BadImageError
from symdpo.data.images import check_image, load_image
from symdpo.data.paths import resolve_inside
from symdpo.pixels import CLIP_MEAN, CLIP_STD, preprocess_clip, to_rgb


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.BILINEAR)  # smooth-ish, like a photo


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (224, 224), (640, 480)])
def test_preprocess_matches_clip_image_processor(size):
    from transformers import CLIPImageProcessor

    # OpenAI CLIP's processor settings (openai/clip-vit-large-patch14 preprocessor_config.json)
    proc = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                              resample=3, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    img = _photo(*size)
    ours = preprocess_clip([img])
    ref = torch.as_tensor(np.asarray(proc(images=[img], return_tensors="np")["pixel_values"]))
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == torch.float32
    # these sizes leave even crop margins, where torchvision's rounding and transformers' flooring agree
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_preprocess_crop_rounds_like_torchvision():
    img = _photo(225, 224)  # one-pixel margin: torchvision rounds 0.5 -> 0 ... Python round(0.5) == 0
    arr = preprocess_clip([img])[0]
    expected = (np.asarray(img, np.float32)[:, 0:224] / 255 - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(
        CLIP_STD, np.float32)
    np.testing.assert_allclose(arr.numpy().transpose(1, 2, 0), expected, atol=1e-5)


def test_preprocess_batch_and_empty():
    assert preprocess_clip([_photo(50, 60), _photo(80, 40)], size=32).shape == (2, 3, 32, 32)
    assert preprocess_clip([]).shape == (0, 3, 224, 224)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_non_rgb_images_become_rgb(mode):
    img = _photo(20, 10).convert(mode) if mode != "I;16" else Image.fromarray(
        np.full((10, 20), 65535, np.uint16))
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (20, 10)
    if mode == "I;16":
        assert np.asarray(out).min() == 255  # full-scale 16-bit white stays white


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert np.asarray(to_rgb(img))[0, 0].tolist() == [255, 255, 255]


def test_load_and_check(tmp_path):
    _photo(30, 20).save(tmp_path / "a.jpg")
    assert check_image(tmp_path, "a.jpg") == (30, 20)
    assert load_image(tmp_path, "a.jpg").mode == "RGB"
    _photo(30, 20).convert("L").save(tmp_path / "g.png")
    assert load_image(tmp_path, "g.png").mode == "RGB"


def test_max_pixels(tmp_path):
    _photo(30, 20).save(tmp_path / "a.jpg")
    with pytest.raises(BadImageError, match="too large"):
        check_image(tmp_path, "a.jpg", max_pixels=100)


def test_paths_must_stay_inside_root(tmp_path):
    (tmp_path / "root").mkdir()
    _photo(8, 8).save(tmp_path / "outside.jpg")
    (tmp_path / "root" / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    for rel in ["../outside.jpg", "/etc/passwd", "a/../../outside.jpg", "C:/x.jpg", "a\\..\\b.jpg", ""]:
        with pytest.raises(BadImageError) as info:
            resolve_inside(tmp_path / "root", rel)
        assert info.value.reason == "unsafe_path"
    with pytest.raises(BadImageError, match="outside the image root"):
        check_image(tmp_path / "root", "link.jpg")  # a symlink out of the root is refused too
