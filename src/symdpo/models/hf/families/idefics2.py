"""Idefics2: SigLIP, a perceiver connector, Mistral-7B; Idefics3's chat format and layout.

Format: its chat template's text (as Idefics3's; its tokenizer adds the ``<s>`` BOS). End marker:
``<end_of_utterance>``.
"""

from __future__ import annotations

from symdpo.models.hf import tiny
from symdpo.models.hf.families.base import Family
from symdpo.models.hf.families.idefics3 import end_of_utterance_formats
from symdpo.models.hf.families.parts import (
    ATTENTION,
    collate_nested,
    encode_with,
    pack_nested,
    processor_with,
)

IMAGE = "<image>"  # the processor's image token, standing for one image in its text


def tiny_model(variant: str | None = None) -> tiny.Tiny:
    """Idefics2: a one-layer perceiver of 4 latents, no image splitting."""
    import transformers as tf

    tok = tiny.tokenizer(["<fake_token_around_image>", IMAGE, "<end_of_utterance>"])
    ip = tf.Idefics2ImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 32}, do_image_splitting=False)
    processor = tf.Idefics2Processor(ip, tok, image_seq_len=4)
    perceiver = dict(hidden_size=32, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                     resampler_head_dim=8, num_key_value_heads=1)
    cfg = tf.Idefics2Config(text_config=dict(model_type="mistral", **tiny.text_config(tok)), vision_config=tiny.VISION,
                            perceiver_config=perceiver, image_token_id=tok.convert_tokens_to_ids(IMAGE),
                            tie_word_embeddings=False)
    return tiny.Tiny(processor, cfg, "Idefics2ForConditionalGeneration")


FAMILY = Family(
    name="idefics2", model_types=("idefics2",), model_classes=("Idefics2ForConditionalGeneration",),
    processor_class="Idefics2Processor", image_processor_class="Idefics2ImageProcessorPil",
    placeholder=IMAGE, end_markers=("<end_of_utterance>",), prompts={"idefics2": end_of_utterance_formats()},
    default_policy="lora", lora_targets=ATTENTION, vision="model.vision_model", connector=("model.connector",),
    xattn=(), lm="model.text_model", encode=encode_with(IMAGE, nested=True), collate=collate_nested,
    prefill_once=True, pack=pack_nested, build_processor=processor_with("image_seq_len", 64),
    processor_sizes=lambda c: {"image_seq_len": int(c.perceiver_config.resampler_n_latents)},
    processor_keys=("image_seq_len",), tiny=tiny_model,
)
