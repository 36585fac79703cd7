"""Tiny random models of each HF family, with processors built from parts offline (tests, CPU demo).

Tokenizers are `train_tiny_tokenizer()` plus the family's special tokens; image processors are the PIL
backends (no torchvision) at 32-64 px. Weights are seeded, so a tiny preset rebuilds identically (a
trainable-only save over it reloads exactly). One builder per family (``tiny_<family>``), named by its
entry's ``tiny`` field in families.py; `families.tiny_model` asks the entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from symdpo.models.tokenizers import train_tiny_tokenizer

TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512)
QWEN_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]


def _tokenizer(specials: list[str], named: dict[str, str] | None = None):
    tok = train_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": specials, "pad_token": "<pad>"})
    if named:  # tokens a processor reads by name (tok.image_token, tok.image_token_id, ...); saved with it
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token,
                                      eos_token=tok.eos_token, pad_token="<pad>", extra_special_tokens=named)
    return tok


def _add_bos(tok) -> None:
    """Make ``tok`` write its BOS before every text it encodes with special tokens (as Gemma's and Llama's do)."""
    from tokenizers.processors import TemplateProcessing

    bos = tok.bos_token
    tok.backend_tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                              special_tokens=[(bos, tok.bos_token_id)])


def image_only(processor_cls):
    """Return ``processor_cls`` without a video processor (whose class lookup needs torchvision)."""

    class ImageOnly(processor_cls):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    ImageOnly.__name__ = ImageOnly.__qualname__ = f"ImageOnly{processor_cls.__name__}"
    return ImageOnly


class Tiny(NamedTuple):
    """What a family's tiny builder returns (its entry's ``tiny``): processor, random config, model class."""

    processor: object
    config: object
    model_class: str
    init: Callable | None = None  # (model) -> None, run after the seeded construction


def _ids(tok) -> dict:
    return dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def _text(tok) -> dict:
    return dict(vocab_size=len(tok), num_key_value_heads=2, tie_word_embeddings=False, **TEXT, **_ids(tok))


_VISION = dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=4,
               intermediate_size=64)


def tiny_idefics(variant: str | None = None) -> Tiny:
    """IDEFICS v1: 32-px images, a one-layer perceiver, cross-attention after every layer, open gates."""
    import transformers as tf

    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
    processor = tf.IdeficsProcessor(tf.IdeficsImageProcessorPil(image_size=32), tok, image_size=32)
    cfg = tf.IdeficsConfig(
        vocab_size=len(tok), **TEXT, **_ids(tok),
        vision_config=dict(embed_dim=32, image_size=32, patch_size=16, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=64),
        perceiver_config=dict(resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2, resampler_head_dim=8),
        use_resampler=True, cross_layer_interval=1,
        alpha_initializer="ones",  # open gates (the release's are trained), so images change the output
    )
    return Tiny(processor, cfg, "IdeficsForVisionText2Text")


def tiny_idefics3(variant: str | None = None) -> Tiny:
    """Idefics3 (``variant="smolvlm"``: SmolVLM's classes): 4 image tokens per image after the pixel shuffle."""
    import transformers as tf

    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"])
    ip = tf.Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    processor = tf.Idefics3Processor(ip, tok, image_seq_len=4)
    cls = tf.SmolVLMConfig if variant == "smolvlm" else tf.Idefics3Config
    cfg = cls(text_config=dict(model_type="llama", **_text(tok)), vision_config=_VISION, scale_factor=2,
              image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)
    model = "SmolVLMForConditionalGeneration" if variant == "smolvlm" else "Idefics3ForConditionalGeneration"
    return Tiny(processor, cfg, model)


def tiny_idefics2(variant: str | None = None) -> Tiny:
    """Idefics2: a one-layer perceiver of 4 latents, no image splitting."""
    import transformers as tf

    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
    ip = tf.Idefics2ImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 32}, do_image_splitting=False)
    processor = tf.Idefics2Processor(ip, tok, image_seq_len=4)
    perceiver = dict(hidden_size=32, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                     resampler_head_dim=8, num_key_value_heads=1)
    cfg = tf.Idefics2Config(text_config=dict(model_type="mistral", **_text(tok)), vision_config=_VISION,
                            perceiver_config=perceiver, image_token_id=tok.convert_tokens_to_ids("<image>"),
                            tie_word_embeddings=False)
    return Tiny(processor, cfg, "Idefics2ForConditionalGeneration")


def tiny_qwen2_vl(variant: str | None = None) -> Tiny:
    """Qwen2-VL (``variant="qwen2_5_vl"``: Qwen2.5-VL's vision tower and classes): 14-px patches, M-RoPE."""
    import transformers as tf

    tok = _tokenizer(QWEN_SPECIALS)
    ip = tf.Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 2)
    processor = image_only(tf.Qwen2VLProcessor)(image_processor=ip, tokenizer=tok)
    rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}
    vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    if variant == "qwen2_5_vl":
        vision = dict(depth=1, hidden_size=32, out_hidden_size=32, num_heads=4, intermediate_size=64,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0])
    cls = tf.Qwen2_5_VLConfig if variant == "qwen2_5_vl" else tf.Qwen2VLConfig
    cfg = cls(text_config=dict(rope_parameters=rope, **_text(tok)), vision_config=vision,
              image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
              video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
              vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"), tie_word_embeddings=False)
    model = "Qwen2_5_VLForConditionalGeneration" if variant == "qwen2_5_vl" else "Qwen2VLForConditionalGeneration"
    return Tiny(processor, cfg, model)


def tiny_qwen3_vl(variant: str | None = None) -> Tiny:
    """Qwen3-VL: 16-px patches (the Qwen2-VL image processor), interleaved M-RoPE, one deepstack layer."""
    import transformers as tf

    tok = _tokenizer(QWEN_SPECIALS)
    ip = tf.Qwen2VLImageProcessorPil(min_pixels=32 * 32 * 4, max_pixels=64 * 64 * 2, patch_size=16)
    processor = image_only(tf.Qwen3VLProcessor)(image_processor=ip, tokenizer=tok)
    rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "mrope_interleaved": True, "rope_theta": 10000.0}
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=16, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=32, num_position_embeddings=16, deepstack_visual_indexes=[0])
    cfg = tf.Qwen3VLConfig(text_config=dict(rope_parameters=rope, head_dim=8, **_text(tok)), vision_config=vision,
                           image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
                           video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
                           vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
                           vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"), tie_word_embeddings=False)
    return Tiny(processor, cfg, "Qwen3VLForConditionalGeneration")


def _open_gemma3_projector(model) -> None:
    # its projector starts at zero (the release's is trained): images would do nothing
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.5)


def tiny_gemma3(variant: str | None = None) -> Tiny:
    """Gemma 3: the processor reads its image tokens off the tokenizer's named special tokens; a 16-token window."""
    import transformers as tf

    tok = _tokenizer(["<start_of_image>", "<image_soft_token>", "<end_of_image>", "<start_of_turn>",
                      "<end_of_turn>"], named={"boi_token": "<start_of_image>", "image_token": "<image_soft_token>",
                                               "eoi_token": "<end_of_image>"})
    _add_bos(tok)  # Gemma's tokenizer starts every text with its BOS (the template's {{ bos_token }})
    processor = tf.Gemma3Processor(tf.Gemma3ImageProcessorPil(size={"height": 32, "width": 32}), tok,
                                   image_seq_length=4)
    gemma = dict(_text(tok), head_dim=8, sliding_window=16, layer_types=["sliding_attention", "full_attention"])
    cfg = tf.Gemma3Config(text_config=gemma, vision_config=_VISION, mm_tokens_per_image=4,
                          boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
                          eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
                          image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"), tie_word_embeddings=False)
    return Tiny(processor, cfg, "Gemma3ForConditionalGeneration", init=_open_gemma3_projector)
