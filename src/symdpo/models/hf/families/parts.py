"""Parts several HF families share: encoding through the processor, collation and packing of image tensors,
positions and masks of a shared-context row, and their chat formats' shape."""

from __future__ import annotations

from collections.abc import Callable

import torch

from symdpo.models import scoring
from symdpo.models.interface import context_text
from symdpo.models.prompts import PromptFormat

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")  # the LM attention projections LoRA wraps
QWEN_VQA = "Answer the question using a single word or phrase."  # Qwen-VL's (and lmms-eval's) VQA instruction


# ---- formats ----------------------------------------------------------------------------------------------------
def chat_formats(user: str, turn_end: str, cue: str, *, vqa: str, caption: str,
                 prefix: str = "") -> dict[str, PromptFormat]:
    """Return the vqa and caption formats of a chat template: ``user`` + image + text + ``turn_end`` + ``cue``.

    A demonstration is its query, the answer and the model-agnostic ``{end}`` (the adapter writes the family's
    turn end there) with the newline the template writes after it; the separator is empty.
    """
    out = {}
    for kind, text, slot in (("vqa", vqa, "{answer}"), ("caption", caption, "{caption}")):
        query = user + "{image}" + text + turn_end + cue
        out[kind] = PromptFormat(demo=query + slot + "{end}\n", query=query, separator="", prefix=prefix)
    return out


# ---- row encoding -----------------------------------------------------------------------------------------------
def encode_with(placeholder: str, nested: bool) -> Callable:
    """Return an encoder of one context through the processor's text + images form (``nested``: images per row)."""

    def encode(processor, items: list) -> tuple[list[int], dict]:
        text, images = context_text(items, placeholder)
        kwargs = {"images": ([images] if nested else images)} if images else {}
        bos = processor.tokenizer.bos_token
        if bos and text.startswith(bos):  # the format wrote the template's BOS: the tokenizer adds no second
            kwargs["add_special_tokens"] = False
        out = processor(text=[text], return_tensors="pt", **kwargs)
        extras = {k: v for k, v in out.items() if k not in ("input_ids", "attention_mask")}
        return out["input_ids"][0].tolist(), extras

    encode.__doc__ = "Return the token ids and image tensors of one context (the processor's text + images form)."
    return encode


def processor_with(key: str, default: int) -> Callable:
    """Return a builder of a processor that takes one size argument ``key`` (``default``: the release's)."""

    def build(cls, images, tok, sizes: dict):
        return cls(images, tok, **{key: sizes.get(key, default)}, chat_template=getattr(tok, "chat_template", None))

    build.__doc__ = f"Return the processor with its ``{key}`` (the release's {default} unless saved)."
    return build


# ---- collation --------------------------------------------------------------------------------------------------
def pad_images(tensors: list[torch.Tensor], shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
    """Return (B, max(1, N), *shape) zeros holding each row's (N_i, *shape) tensor first."""
    n = max([1] + [t.shape[0] for t in tensors])
    out = torch.zeros(len(tensors), n, *shape, dtype=dtype)
    for i, t in enumerate(tensors):
        out[i, : t.shape[0]] = t
    return out


def collate_nested(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return zero-padded pixel_values (B, N, 3, S, S) and pixel_attention_mask (B, N, S, S) (none without images)."""
    with_images = [r for r in rows if "pixel_values" in r]
    if not with_images:
        return {}
    shape = tuple(with_images[0]["pixel_values"].shape[2:])
    empty = torch.zeros(0, *shape)
    pixels = pad_images([r["pixel_values"][0] if "pixel_values" in r else empty for r in rows], shape)
    masks = [r["pixel_attention_mask"][0] if "pixel_values" in r else torch.zeros(0, *shape[1:]) for r in rows]
    return {"pixel_values": pixels, "pixel_attention_mask": pad_images(masks, shape[1:], torch.long)}


def collate_flat(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return the concatenated patches and grids of a batch (Qwen-VL), and its token types (padded as the ids)."""
    out: dict = {}
    with_images = [r for r in rows if "pixel_values" in r]
    if with_images:
        out["pixel_values"] = torch.cat([r["pixel_values"] for r in with_images])
        out["image_grid_thw"] = torch.cat([r["image_grid_thw"] for r in with_images])
    if any("mm_token_type_ids" in r for r in rows):
        # token types follow the ids: 1 on image tokens, 0 elsewhere (padding and answers included)
        out["mm_token_type_ids"] = (input_ids == processor.image_token_id).long()
    return out


# ---- packing: the image tensors of several pairs as one row's (models/packing.py) -------------------------------
def pack_flat(rows: list[dict]) -> dict:
    """Return the pairs' patches (and grids) concatenated in order (Qwen-VL, Gemma 3: images stack by image)."""
    out = {}
    for key in ("pixel_values", "image_grid_thw"):
        parts = [r[key] for r in rows if key in r]
        if parts:
            out[key] = torch.cat(parts)
    if any("mm_token_type_ids" in r for r in rows):
        out["mm_token_type_ids"] = None  # present: the collation rebuilds it from the packed ids
    return out


def pack_nested(rows: list[dict]) -> dict:
    """Return the pairs' (1, N, ...) images and pixel masks joined along the image axis (Idefics2/3)."""
    with_images = [r for r in rows if "pixel_values" in r]
    if not with_images:
        return {}
    return {k: torch.cat([r[k] for r in with_images], 1) for k in ("pixel_values", "pixel_attention_mask")}


# ---- positions and masks of a shared-context row (context, then both answers from the same position) ----------
def text_positions(hf, ctx, widths: tuple[int, int]) -> torch.Tensor:
    """Return (B, T) 1-D positions: the context's from its padding mask, each answer continuing the context."""
    mask = ctx.attention_mask
    start = mask.sum(1, keepdim=True)
    return torch.cat([(mask.cumsum(-1) - 1).clamp(min=0)] + [start + torch.arange(w) for w in widths], 1)


def additive_mask(hf, visible: torch.Tensor, positions, input_ids, dtype) -> torch.Tensor:
    """Return the (B, 1, T, T) additive float mask of a bool visibility (the default ``tree_attention``)."""
    return scoring.additive_mask(visible, dtype)
