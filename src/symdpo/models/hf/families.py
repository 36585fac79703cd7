"""The HF-native model families: where each keeps its parts, how its processor is fed, and its markers.

A family is one keyword-only entry: data plus small functions (row encoding, batch collation of the image
tensors, packing, the processor built from its parts and the sizes it needs, its tiny offline model in
``tiny.py``); the adapter, loading and training code ask the entry and never branch on a family's name.

End-of-answer marker per family (``end_of_chunk``; the first candidate that is one token of the tokenizer):

* ``idefics`` (IDEFICS v1): ``<end_of_utterance>``, the token IDEFICS (and its instruct tuning) puts after
  each turn; ``"\\n"`` for a tokenizer without it (the base tokenizer may lack it).
* ``idefics3`` (Idefics3, SmolVLM): ``<end_of_utterance>``, ending every turn of their chat format.
* ``gemma3`` (Gemma 3): ``<end_of_turn>``, ending every turn of its chat format.
* ``idefics2`` (Idefics2): ``<end_of_utterance>``, as Idefics3 (whose layout it shares: perceiver connector).
* ``qwen2_vl`` (Qwen2-VL, Qwen2.5-VL) and ``qwen3_vl`` (Qwen3-VL): ``<|im_end|>``, ending every turn of their
  chat format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from symdpo.models import scoring
from symdpo.models.hf import tiny
from symdpo.models.interface import context_text


@dataclass(frozen=True, kw_only=True)
class Family:
    """How one HF family is driven by the adapter (keyword-only: an entry names every part it sets)."""

    name: str
    model_classes: tuple[str, ...]  # transformers classes of the family (the first is the default)
    processor_class: str
    image_processor_class: str  # the PIL backend: it needs no torchvision
    image_token: str  # the token the processor expands per image (its embedding row is the "<image>" row)
    placeholder: str | None  # text standing for one image in the processor's text; None: IDEFICS prompt lists
    end_markers: tuple[str, ...]
    default_policy: str  # what a run without model.policy trains (interface.POLICIES; the reason beside each entry)
    lora_targets: tuple[str, ...]  # LM module names LoRA wraps
    vision: str  # attribute path of the vision tower under the HF model
    connector: tuple[str, ...]  # vision-to-LM bridge (perceiver / projector / merger)
    xattn: tuple[str, ...]  # gated cross-attention (IDEFICS v1 only)
    lm: str  # the language model's decoder stack (LoRA goes here, never into the cross-attention)
    encode: Callable  # (processor, items: list[str | PIL]) -> (ids, per-row image tensors)
    collate: Callable  # (rows' image tensors, padded input_ids, processor) -> model kwargs
    positions: Callable | None = None  # (hf, context batch, answer widths) -> position ids of a tree row
    tree_attention: Callable | None = None  # (hf, visible, positions, ids, dtype) -> the row's attention mask(s)
    gates: tuple[str, ...] = ()  # names of the cross-attention gate parameters (under ``xattn``)
    new_tokens: tuple[str, ...] = ()  # modules holding the embeddings of tokens the family added (trained)
    image_cache: bool = False  # processor and vision outputs stack images by rows: evaluation caches them (image_cache.py)
    prefill_once: bool = False  # beam search may continue from one prefill per context (tested equal to HF's own)
    pack: Callable | None = None  # (pairs' image tensors) -> one packed row's; None: the family cannot pack
    # (processor class, image processor, tokenizer, saved sizes) -> the processor; default: built image-only
    build_processor: Callable | None = None
    processor_sizes: Callable | None = None  # (hf config) -> the sizes a processor built from parts needs
    tiny: Callable | None = None  # (variant) -> tiny.Tiny: the offline random model of the family (tests, CPU)


def get_path(module: torch.nn.Module, path: str) -> torch.nn.Module:
    """Return the submodule at dotted ``path`` (``""`` is the module itself)."""
    return module.get_submodule(path) if path else module


def find_path(module: torch.nn.Module, path: str) -> torch.nn.Module | None:
    """Return the submodule at dotted ``path``, or None when the model has none there."""
    try:
        return get_path(module, path)
    except AttributeError:
        return None


# ---- row encoding ---------------------------------------------------------------------------------------------


def encode_idefics(processor, items: list) -> tuple[list[int], dict]:
    """Return the token ids and image tensors of one IDEFICS v1 context (its processor's prompt-list form)."""
    # The processor writes <fake_token_around_image><image><fake_token_around_image> per image and a BOS first;
    # end-of-utterance tokens are ours to write (the markers), so its own insertion is off.
    prompt = [it for it in items if not (isinstance(it, str) and not it)]
    out = processor(text=[prompt or [""]], add_end_of_utterance_token=False, return_tensors="pt")
    n = sum(not isinstance(it, str) for it in items)
    return out["input_ids"][0].tolist(), {"pixel_values": out["pixel_values"][0, :n]}


def _encode_with(placeholder: str, nested: bool) -> Callable:
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


# ---- processors built from their parts (processors.py) -------------------------------------------------------
def _processor_with(key: str, default: int) -> Callable:
    def build(cls, images, tok, sizes: dict):
        return cls(images, tok, **{key: sizes.get(key, default)}, chat_template=getattr(tok, "chat_template", None))

    build.__doc__ = f"Return the processor with its ``{key}`` (the release's {default} unless saved)."
    return build


def build_idefics_processor(cls, images, tok, sizes: dict):
    """Return IDEFICS v1's processor (no chat template: the release ships none)."""
    return cls(images, tok, image_size=sizes.get("image_size", images.image_size))


def idefics3_sizes(config) -> dict:
    """Return Idefics3's image tokens per image: its patches, merged by the pixel shuffle."""
    v = config.vision_config
    return {"image_seq_len": int(((v.image_size // v.patch_size) ** 2) / (config.scale_factor ** 2))}


# ---- collation ------------------------------------------------------------------------------------------------
def _pad_images(tensors: list[torch.Tensor], shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
    """Return (B, max(1, N), *shape) zeros holding each row's (N_i, *shape) tensor first."""
    n = max([1] + [t.shape[0] for t in tensors])
    out = torch.zeros(len(tensors), n, *shape, dtype=dtype)
    for i, t in enumerate(tensors):
        out[i, : t.shape[0]] = t
    return out


def collate_idefics(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return pixel_values (B, N, 3, S, S) and the image_attention_mask (B, T, N) of an IDEFICS v1 batch."""
    from transformers.models.idefics.processing_idefics import (
        image_attention_mask_for_packed_input_ids,
        incremental_to_binary_attention_mask,
    )

    size = processor.image_processor.image_size
    pixels = _pad_images([r["pixel_values"] for r in rows], (3, size, size))
    if all(r["pixel_values"].shape[0] == 0 for r in rows):  # text only: the processor's all-zero mask
        return {"pixel_values": pixels, "image_attention_mask": torch.zeros(*input_ids.shape, 1, dtype=torch.long)}
    # the processor's own rule (each token attends to the latest image before it), recomputed on the final ids
    # so that appended answer tokens and left padding get exactly the mask the processor would give them
    incremental, _ = image_attention_mask_for_packed_input_ids(input_ids.clone(), processor.tokenizer, "pt")
    mask = incremental_to_binary_attention_mask(incremental, "pt", num_classes=pixels.shape[1])
    return {"pixel_values": pixels, "image_attention_mask": mask}


def collate_idefics3(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return zero-padded pixel_values (B, N, 3, S, S) and pixel_attention_mask (B, N, S, S) (none without images)."""
    with_images = [r for r in rows if "pixel_values" in r]
    if not with_images:
        return {}
    shape = tuple(with_images[0]["pixel_values"].shape[2:])
    empty = torch.zeros(0, *shape)
    pixels = _pad_images([r["pixel_values"][0] if "pixel_values" in r else empty for r in rows], shape)
    masks = [r["pixel_attention_mask"][0] if "pixel_values" in r else torch.zeros(0, *shape[1:]) for r in rows]
    return {"pixel_values": pixels, "pixel_attention_mask": _pad_images(masks, shape[1:], torch.long)}


def collate_qwen2_vl(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return the concatenated patches and grids of a Qwen2-VL batch, and its token types (padded as the ids)."""
    out: dict = {}
    with_images = [r for r in rows if "pixel_values" in r]
    if with_images:
        out["pixel_values"] = torch.cat([r["pixel_values"] for r in with_images])
        out["image_grid_thw"] = torch.cat([r["image_grid_thw"] for r in with_images])
    if any("mm_token_type_ids" in r for r in rows):
        # token types follow the ids: 1 on image tokens, 0 elsewhere (padding and answers included)
        out["mm_token_type_ids"] = (input_ids == processor.image_token_id).long()
    return out


# ---- packing: the image tensors of several pairs as one row's (models/packing.py) -----------------------------
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


# ---- positions of a shared-context row (context, then both answers from the same position) -------------------
def text_positions(hf, ctx, widths: tuple[int, int]) -> torch.Tensor:
    """Return (B, T) 1-D positions: the context's from its padding mask, each answer continuing the context."""
    mask = ctx.attention_mask
    start = mask.sum(1, keepdim=True)
    return torch.cat([(mask.cumsum(-1) - 1).clamp(min=0)] + [start + torch.arange(w) for w in widths], 1)


def mrope_positions(hf, ctx, widths: tuple[int, int]) -> torch.Tensor:
    """Return (3, B, T) M-RoPE positions (Qwen-VL): the model's own for the context, text positions after it."""
    if "image_grid_thw" not in ctx.extras:
        return text_positions(hf, ctx, widths)
    pos, _ = hf.model.get_rope_index(ctx.input_ids, mm_token_type_ids=ctx.extras["mm_token_type_ids"],
                                     image_grid_thw=ctx.extras["image_grid_thw"], attention_mask=ctx.attention_mask)
    last = pos[:, :, -1:]  # contexts are left-padded: the last column is every row's last real token
    return torch.cat([pos] + [last + 1 + torch.arange(w) for w in widths], 2)


def additive_mask(hf, visible: torch.Tensor, positions, input_ids, dtype) -> torch.Tensor:
    """Return the (B, 1, T, T) additive float mask of a bool visibility (the default ``tree_attention``)."""
    return scoring.additive_mask(visible, dtype)


def gemma3_tree_attention(hf, visible: torch.Tensor, positions: torch.Tensor, input_ids, dtype) -> dict:
    """Return Gemma 3's two masks of a tree row, as its own rule builds them for one sequence.

    Full-attention layers: the row's visibility, or both tokens in the same image (image tokens attend to their
    image bidirectionally). Sliding layers: that, and query minus key *position* under the window (positions,
    not columns: the rejected answer sits after the chosen one in the row but continues the context).
    """
    is_image = input_ids == hf.config.image_token_id
    start = is_image & ~torch.nn.functional.pad(is_image, (1, 0))[:, :-1]
    block = torch.where(is_image, start.long().cumsum(1), -1)
    same_image = (block[:, :, None] == block[:, None, :]) & is_image[:, :, None]
    full = visible | same_image
    window = hf.config.get_text_config().sliding_window
    sliding = full & ((positions[:, :, None] - positions[:, None, :]) < window)
    return {"full_attention": additive_mask(hf, full, None, None, dtype),
            "sliding_attention": additive_mask(hf, sliding, None, None, dtype)}


def collate_gemma3(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return the concatenated pixel_values of a Gemma 3 batch and its token types (1 on image tokens)."""
    out: dict = {"token_type_ids": (input_ids == processor.tokenizer.image_token_id).long()}
    with_images = [r["pixel_values"] for r in rows if "pixel_values" in r]
    if with_images:
        out["pixel_values"] = torch.cat(with_images)
    return out


_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")  # the LM attention projections LoRA wraps
_QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        # IDEFICS v1 is a Flamingo: its default is the SymDPO paper's setting (perceiver, cross-attention, new rows)
        Family(name="idefics", model_classes=("IdeficsForVisionText2Text",), processor_class="IdeficsProcessor",
               image_processor_class="IdeficsImageProcessorPil", image_token="<image>", placeholder=None,
               end_markers=("<end_of_utterance>", "\n"), default_policy="openflamingo", lora_targets=_ATTENTION,
               vision="model.vision_model", connector=("model.perceiver_resampler",),
               xattn=("model.gated_cross_attn_layers",), lm="model.layers", encode=encode_idefics,
               collate=collate_idefics, gates=("alpha_cross_attn", "alpha_dense"), build_processor=build_idefics_processor,
               tiny=tiny.tiny_idefics,
               new_tokens=("model.embed_tokens.additional_embedding", "lm_head.additional_fc")),
        # the others default to LoRA: their connector is one projection in front of the LM, too small a lever for
        # learning to read symbols off demonstration images, and full tuning of a 2-8B LM is rarely wanted
        Family(name="idefics3", model_classes=("Idefics3ForConditionalGeneration", "SmolVLMForConditionalGeneration"),
               processor_class="Idefics3Processor", image_processor_class="Idefics3ImageProcessorPil",
               image_token="<image>", placeholder="<image>", end_markers=("<end_of_utterance>",), default_policy="lora",
               lora_targets=_ATTENTION, vision="model.vision_model", connector=("model.connector",), xattn=(),
               lm="model.text_model", encode=_encode_with("<image>", nested=True), collate=collate_idefics3,
               prefill_once=True, pack=pack_nested, build_processor=_processor_with("image_seq_len", 169),
               processor_sizes=idefics3_sizes, tiny=tiny.tiny_idefics3),
        Family(name="qwen2_vl", model_classes=("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"),
               processor_class="Qwen2VLProcessor", image_processor_class="Qwen2VLImageProcessorPil",
               image_token="<|image_pad|>", placeholder=_QWEN_IMAGE, end_markers=("<|im_end|>",), default_policy="lora",
               lora_targets=_ATTENTION, vision="model.visual", connector=("model.visual.merger",), xattn=(),
               lm="model.language_model", encode=_encode_with(_QWEN_IMAGE, nested=False), collate=collate_qwen2_vl,
               positions=mrope_positions, image_cache=True, prefill_once=True, pack=pack_flat, tiny=tiny.tiny_qwen2_vl),
        Family(name="idefics2", model_classes=("Idefics2ForConditionalGeneration",), processor_class="Idefics2Processor",
               image_processor_class="Idefics2ImageProcessorPil", image_token="<image>", placeholder="<image>",
               end_markers=("<end_of_utterance>",), default_policy="lora", lora_targets=_ATTENTION,
               vision="model.vision_model", connector=("model.connector",), xattn=(), lm="model.text_model",
               encode=_encode_with("<image>", nested=True), collate=collate_idefics3, prefill_once=True,
               pack=pack_nested, build_processor=_processor_with("image_seq_len", 64),
               processor_sizes=lambda c: {"image_seq_len": int(c.perceiver_config.resampler_n_latents)},
               tiny=tiny.tiny_idefics2),
        Family(name="qwen3_vl", model_classes=("Qwen3VLForConditionalGeneration",), processor_class="Qwen3VLProcessor",
               image_processor_class="Qwen2VLImageProcessorPil", image_token="<|image_pad|>", placeholder=_QWEN_IMAGE,
               end_markers=("<|im_end|>",), default_policy="lora", lora_targets=_ATTENTION, vision="model.visual",
               connector=("model.visual.merger", "model.visual.deepstack_merger_list"), xattn=(),
               lm="model.language_model", encode=_encode_with(_QWEN_IMAGE, nested=False), collate=collate_qwen2_vl,
               positions=mrope_positions, image_cache=True, prefill_once=True, pack=pack_flat, tiny=tiny.tiny_qwen3_vl),
        Family(name="gemma3", model_classes=("Gemma3ForConditionalGeneration",), processor_class="Gemma3Processor",
               image_processor_class="Gemma3ImageProcessorPil", image_token="<image_soft_token>",
               placeholder="<start_of_image>", end_markers=("<end_of_turn>",), default_policy="lora",
               lora_targets=_ATTENTION, vision="model.vision_tower", connector=("model.multi_modal_projector",),
               xattn=(), lm="model.language_model", encode=_encode_with("<start_of_image>", nested=True),
               collate=collate_gemma3, tree_attention=gemma3_tree_attention, pack=pack_flat,
               build_processor=_processor_with("image_seq_length", 256),
               processor_sizes=lambda c: {"image_seq_length": int(c.mm_tokens_per_image)},
               tiny=tiny.tiny_gemma3),
    ]
}

# transformers model_type -> family (for hub ids given without a preset)
MODEL_TYPES = {"idefics": "idefics", "idefics2": "idefics2", "idefics3": "idefics3", "smolvlm": "idefics3",
               "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "qwen3_vl": "qwen3_vl", "gemma3": "gemma3"}


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
