"""Tiny random models of each HF family, with processors built from parts offline (tests, CPU demo).

Tokenizers are `train_tiny_tokenizer()` plus the family's special tokens; image processors are the PIL
backends (no torchvision) at 32-64 px. Weights are seeded, so a tiny preset rebuilds identically (a
trainable-only save over it reloads exactly).
"""

from __future__ import annotations

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


def tiny_processor(family: str):
    """Return a processor of ``family`` built offline from a tiny tokenizer and a small image processor."""
    import transformers as tf

    if family == "idefics":
        tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
        return tf.IdeficsProcessor(tf.IdeficsImageProcessorPil(image_size=32), tok, image_size=32)
    if family == "idefics3":
        tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"])
        ip = tf.Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
        return tf.Idefics3Processor(ip, tok, image_seq_len=4)
    if family == "idefics2":
        tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
        ip = tf.Idefics2ImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 32}, do_image_splitting=False)
        return tf.Idefics2Processor(ip, tok, image_seq_len=4)
    if family == "qwen2_vl":
        tok = _tokenizer(QWEN_SPECIALS)
        ip = tf.Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 2)
        return image_only(tf.Qwen2VLProcessor)(image_processor=ip, tokenizer=tok)
    if family == "gemma3":  # the processor reads its image tokens off the tokenizer's named special tokens
        tok = _tokenizer(["<start_of_image>", "<image_soft_token>", "<end_of_image>", "<start_of_turn>",
                          "<end_of_turn>"], named={"boi_token": "<start_of_image>", "image_token": "<image_soft_token>",
                                                   "eoi_token": "<end_of_image>"})
        _add_bos(tok)  # Gemma's tokenizer starts every text with its BOS (the template's {{ bos_token }})
        return tf.Gemma3Processor(tf.Gemma3ImageProcessorPil(size={"height": 32, "width": 32}), tok, image_seq_length=4)
    if family == "qwen3_vl":  # Qwen3-VL: 16-px patches, the Qwen2-VL image processor
        tok = _tokenizer(QWEN_SPECIALS)
        ip = tf.Qwen2VLImageProcessorPil(min_pixels=32 * 32 * 4, max_pixels=64 * 64 * 2, patch_size=16)
        return image_only(tf.Qwen3VLProcessor)(image_processor=ip, tokenizer=tok)
    raise ValueError(f"no tiny processor for family {family!r}")


def tiny_config(family: str, tok, *, variant: str | None = None):
    """Return a tiny random config of ``family`` sized for ``tok``."""
    import transformers as tf

    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if family == "idefics":
        return tf.IdeficsConfig(
            vocab_size=len(tok), **{k: v for k, v in TEXT.items()}, **ids,
            vision_config=dict(embed_dim=32, image_size=32, patch_size=16, num_hidden_layers=1, num_attention_heads=4,
                               intermediate_size=64),
            perceiver_config=dict(resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2, resampler_head_dim=8),
            use_resampler=True, cross_layer_interval=1,
            alpha_initializer="ones",  # open gates (the release's are trained), so images change the output
        )
    text = dict(vocab_size=len(tok), num_key_value_heads=2, tie_word_embeddings=False, **TEXT, **ids)
    if family == "idefics3":
        vision = dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=4,
                      intermediate_size=64)
        cls = tf.SmolVLMConfig if variant == "smolvlm" else tf.Idefics3Config
        return cls(text_config=dict(model_type="llama", **text), vision_config=vision, scale_factor=2,
                   image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)
    if family == "gemma3":
        vision = dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=4,
                      intermediate_size=64)
        gemma = dict(text, head_dim=8, sliding_window=16, layer_types=["sliding_attention", "full_attention"])
        return tf.Gemma3Config(text_config=gemma, vision_config=vision, mm_tokens_per_image=4,
                               boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
                               eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
                               image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"), tie_word_embeddings=False)
    if family == "idefics2":
        vision = dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=4,
                      intermediate_size=64)
        perceiver = dict(hidden_size=32, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                         resampler_head_dim=8, num_key_value_heads=1)
        return tf.Idefics2Config(text_config=dict(model_type="mistral", **text), vision_config=vision,
                                 perceiver_config=perceiver, image_token_id=tok.convert_tokens_to_ids("<image>"),
                                 tie_word_embeddings=False)
    if family == "qwen3_vl":
        rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "mrope_interleaved": True, "rope_theta": 10000.0}
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=16, spatial_merge_size=2,
                      temporal_patch_size=2, out_hidden_size=32, num_position_embeddings=16, deepstack_visual_indexes=[0])
        return tf.Qwen3VLConfig(text_config=dict(rope_parameters=rope, head_dim=8, **text), vision_config=vision,
                                image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
                                video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
                                vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
                                vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"), tie_word_embeddings=False)
    if family == "qwen2_vl":
        rope = {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}
        vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)
        if variant == "qwen2_5_vl":
            vision = dict(depth=1, hidden_size=32, out_hidden_size=32, num_heads=4, intermediate_size=64,
                          patch_size=14, spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0])
        cls = tf.Qwen2_5_VLConfig if variant == "qwen2_5_vl" else tf.Qwen2VLConfig
        return cls(text_config=dict(rope_parameters=rope, **text), vision_config=vision,
                   image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
                   video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
                   vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"), tie_word_embeddings=False)
    raise ValueError(f"no tiny config for family {family!r}")


MODEL_CLASSES = {
    ("idefics", None): "IdeficsForVisionText2Text",
    ("idefics3", None): "Idefics3ForConditionalGeneration",
    ("idefics3", "smolvlm"): "SmolVLMForConditionalGeneration",
    ("qwen2_vl", None): "Qwen2VLForConditionalGeneration",
    ("qwen2_vl", "qwen2_5_vl"): "Qwen2_5_VLForConditionalGeneration",
    ("idefics2", None): "Idefics2ForConditionalGeneration",
    ("qwen3_vl", None): "Qwen3VLForConditionalGeneration",
    ("gemma3", None): "Gemma3ForConditionalGeneration",
}


def tiny_model(family: str, *, variant: str | None = None, seed: int = 0):
    """Return (tiny random HF model in eval mode, its processor); the same weights for the same seed."""
    import transformers as tf

    processor = tiny_processor(family)
    cfg = tiny_config(family, processor.tokenizer, variant=variant)
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = getattr(tf, MODEL_CLASSES[(family, variant)])(cfg)
        if family == "gemma3":  # its projector starts at zero (the release's is trained): images would do nothing
            with torch.no_grad():
                model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.5)
    return model.eval(), processor
