"""The HF-native model families: one module each, holding everything that family needs in one entry.

A family module defines ``FAMILY``: where the model keeps its parts, how its processor is fed (row encoding,
batch collation of the image tensors, packing), the processor built from its parts and the sizes it needs,
its native few-shot formats (equal to its published chat template), its default training policy and its tiny
offline model. The adapter, loading and training code ask the entry and never branch on a family's name;
adding a family is one module here and one line in ``FAMILIES``.
"""

from __future__ import annotations

import torch

from symdpo.models.hf import tiny
from symdpo.models.hf.families import gemma3, idefics, idefics2, idefics3, llava_onevision, qwen2_vl, qwen3_vl
from symdpo.models.hf.families.base import Family, find_path, get_path
from symdpo.models.hf.families.parts import additive_mask, text_positions

FAMILIES: dict[str, Family] = {m.FAMILY.name: m.FAMILY for m in (idefics, idefics3, qwen2_vl, idefics2, qwen3_vl,
                                                                   gemma3, llava_onevision)}

# transformers model_type -> family (for hub ids given without a preset)
MODEL_TYPES: dict[str, str] = {t: f.name for f in FAMILIES.values() for t in f.model_types}

__all__ = ["FAMILIES", "MODEL_TYPES", "Family", "additive_mask", "choose_end_marker", "family_of", "find_path",
           "get_path", "text_positions", "tiny_model", "tiny_processor"]


def family_of(model) -> Family:
    """Return the family of a transformers model instance (by its config's model_type)."""
    mt = model.config.model_type
    if mt not in MODEL_TYPES:
        raise ValueError(f"unsupported model type {mt!r}; supported: {', '.join(sorted(MODEL_TYPES))}")
    return FAMILIES[MODEL_TYPES[mt]]


def choose_end_marker(family: Family, tokenizer) -> str:
    """Return the family's end-of-answer marker: its first candidate that is a single token of ``tokenizer``."""
    for marker in family.end_markers:
        if len(tokenizer(marker, add_special_tokens=False)["input_ids"]) == 1:
            return marker
    return family.end_markers[-1]


# ---- the tiny offline models (tests, CPU): each family's builder, named by its entry ----------------------
def _tiny(family: str, variant: str | None) -> tiny.Tiny:
    entry = FAMILIES.get(family)
    if entry is None or entry.tiny is None:
        raise ValueError(f"no tiny model for family {family!r}")
    return entry.tiny(variant)


def tiny_processor(family: str):
    """Return a processor of ``family`` built offline from a tiny tokenizer and a small image processor."""
    return _tiny(family, None).processor


def tiny_model(family: str, *, variant: str | None = None, seed: int = 0):
    """Return (tiny random HF model in eval mode, its processor); the same weights for the same seed."""
    import transformers as tf

    built = _tiny(family, variant)
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = getattr(tf, built.model_class)(built.config)
        if built.init is not None:
            built.init(model)
    return model.eval(), built.processor
