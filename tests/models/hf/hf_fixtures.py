"""Helpers of the HF-family tests: tiny random models per family (built offline), and small images."""

from __future__ import annotations

import numpy as np
from PIL import Image

FAMILY_PRESETS = ["tiny-idefics", "tiny-idefics2", "tiny-idefics3", "tiny-qwen2-vl", "tiny-qwen3-vl", "tiny-gemma3",
                  "tiny-llava-onevision"]
VARIANT_PRESETS = ["tiny-smolvlm", "tiny-qwen2.5-vl"]


def picture(seed: int, h: int = 40, w: int = 56) -> Image.Image:
    """Return a random RGB picture (deterministic per seed)."""
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


def vqa_context(seed: int = 1, shots: int = 1) -> list:
    """Return an OpenFlamingo-style context: ``shots`` demonstrations and an open query, each with an image."""
    ctx: list = []
    for i in range(shots):
        ctx += [picture(seed + i), f"Question:What color is {i}? Short answer:red<|endofchunk|>"]
    return ctx + [picture(seed + 100), "Question:What shape? Short answer:"]


def native_context(lmm, seed: int = 1, shots: int = 1) -> list:
    """Return a VQA context in the model's own prompt format (a chat cue's trailing space included)."""
    from symdpo.eval.prompts import PromptItem, render_context
    from symdpo.models.prompts import to_interleaved

    fmt = lmm.prompt_format("vqa", "native")
    demos = [PromptItem(picture(seed + i), {"question": f"What color is {i}?", "answer": "red"}) for i in range(shots)]
    text, images = render_context(fmt, demos, PromptItem(picture(seed + 100), {"question": "What shape?"}))
    return to_interleaved(text, images, fmt.image_marker)


_CACHE: dict = {}


def load(name: str):
    """Return the (cached) model of an HF tiny preset."""
    from symdpo.models.registry import load_model

    if name not in _CACHE:
        _CACHE[name] = load_model(name)
    return _CACHE[name]
