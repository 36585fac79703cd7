"""Qwen3-VL (instruct): Qwen2-VL's interface with interleaved M-RoPE and deepstack vision features.

Format: Qwen2-VL's ChatML turns; its template writes no default system turn. End marker: ``<|im_end|>``.
"""

from __future__ import annotations

from symdpo.models.hf import tiny
from symdpo.models.hf.families.base import Family
from symdpo.models.hf.families.parts import ATTENTION, collate_flat, encode_with, pack_flat
from symdpo.models.hf.families.qwen2_vl import IMAGE, SPECIALS, chatml_formats, mrope_positions


def tiny_model(variant: str | None = None) -> tiny.Tiny:
    """Qwen3-VL: 16-px patches (the Qwen2-VL image processor), interleaved M-RoPE, one deepstack layer."""
    import transformers as tf

    tok = tiny.tokenizer(SPECIALS)
    ip = tf.Qwen2VLImageProcessorPil(min_pixels=32 * 32 * 4, max_pixels=64 * 64 * 2, patch_size=16)
    processor = tiny.image_only(tf.Qwen3VLProcessor)(image_processor=ip, tokenizer=tok)
    rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "mrope_interleaved": True, "rope_theta": 10000.0}
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=16, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=32, num_position_embeddings=16, deepstack_visual_indexes=[0])
    cfg = tf.Qwen3VLConfig(text_config=dict(rope_parameters=rope, head_dim=8, **tiny.text_config(tok)),
                           vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
                           video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
                           vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
                           vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"), tie_word_embeddings=False)
    return tiny.Tiny(processor, cfg, "Qwen3VLForConditionalGeneration")


FAMILY = Family(
    name="qwen3_vl", model_types=("qwen3_vl",), model_classes=("Qwen3VLForConditionalGeneration",),
    processor_class="Qwen3VLProcessor", image_processor_class="Qwen2VLImageProcessorPil",
    placeholder=IMAGE, end_markers=("<|im_end|>",), prompts={"qwen3_vl": chatml_formats()}, default_policy="lora",
    lora_targets=ATTENTION, vision="model.visual", connector=("model.visual.merger", "model.visual.deepstack_merger_list"),
    xattn=(), lm="model.language_model", encode=encode_with(IMAGE, nested=False), collate=collate_flat,
    positions=mrope_positions, image_cache=True, prefill_once=True, pack=pack_flat, tiny=tiny_model,
)
