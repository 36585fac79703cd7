"""Qwen2-VL and Qwen2.5-VL (instruct): a ViT with 2x2 patch merging, M-RoPE positions, a Qwen2 LM.

Format: ChatML roles as their chat template writes them (a system turn first, ``<|im_end|>\\n`` after every
turn) with Qwen's VQA instruction "Answer the question using a single word or phrase.". End marker:
``<|im_end|>``.
"""

from __future__ import annotations

import torch

from symdpo.models.hf import tiny
from symdpo.models.hf.families.base import Family
from symdpo.models.hf.families.parts import (
    ATTENTION,
    QWEN_VQA,
    chat_formats,
    collate_flat,
    encode_with,
    pack_flat,
    text_positions,
)

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def chatml_formats(prefix: str = "") -> dict:
    """Return the Qwen-VL chat template's vqa and caption formats (``prefix``: its default system turn, if any)."""
    return chat_formats("<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n", vqa="{question}\n" + QWEN_VQA,
                        caption="Describe the image in one sentence.", prefix=prefix)


def mrope_positions(hf, ctx, widths: tuple[int, int]) -> torch.Tensor:
    """Return (3, B, T) M-RoPE positions (Qwen-VL): the model's own for the context, text positions after it."""
    if "image_grid_thw" not in ctx.extras:
        return text_positions(hf, ctx, widths)
    pos, _ = hf.model.get_rope_index(ctx.input_ids, mm_token_type_ids=ctx.extras["mm_token_type_ids"],
                                     image_grid_thw=ctx.extras["image_grid_thw"], attention_mask=ctx.attention_mask)
    last = pos[:, :, -1:]  # contexts are left-padded: the last column is every row's last real token
    return torch.cat([pos] + [last + 1 + torch.arange(w) for w in widths], 2)


def tiny_model(variant: str | None = None) -> tiny.Tiny:
    """Qwen2-VL (``variant="qwen2_5_vl"``: Qwen2.5-VL's vision tower and classes): 14-px patches, M-RoPE."""
    import transformers as tf

    tok = tiny.tokenizer(SPECIALS)
    ip = tf.Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 2)
    processor = tiny.image_only(tf.Qwen2VLProcessor)(image_processor=ip, tokenizer=tok)
    rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}
    vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    if variant == "qwen2_5_vl":
        vision = dict(depth=1, hidden_size=32, out_hidden_size=32, num_heads=4, intermediate_size=64,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0])
    cls = tf.Qwen2_5_VLConfig if variant == "qwen2_5_vl" else tf.Qwen2VLConfig
    cfg = cls(text_config=dict(rope_parameters=rope, **tiny.text_config(tok)), vision_config=vision,
              image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
              video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
              vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"), tie_word_embeddings=False)
    model = "Qwen2_5_VLForConditionalGeneration" if variant == "qwen2_5_vl" else "Qwen2VLForConditionalGeneration"
    return tiny.Tiny(processor, cfg, model)


FAMILY = Family(
    name="qwen2_vl", model_types=("qwen2_vl", "qwen2_5_vl"),
    model_classes=("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"),
    processor_class="Qwen2VLProcessor", image_processor_class="Qwen2VLImageProcessorPil",
    placeholder=IMAGE, end_markers=("<|im_end|>",), prompts={"qwen2_vl": chatml_formats(SYSTEM)},
    default_policy="lora", lora_targets=ATTENTION, vision="model.visual", connector=("model.visual.merger",), xattn=(),
    lm="model.language_model", encode=encode_with(IMAGE, nested=False), collate=collate_flat,
    positions=mrope_positions, image_cache=True, prefill_once=True, pack=pack_flat, tiny=tiny_model,
)
