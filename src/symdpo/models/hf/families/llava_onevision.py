"""LLaVA-OneVision (llava-hf conversions): SigLIP, a two-layer projector, a Qwen2 LM; AnyRes for one image.

Format: its chat template's text: ChatML roles with no default system turn, ``<image>\\n`` before a turn's text,
``<|im_end|>\\n`` after every turn, and the VQA instruction its lmms-eval tasks use ("Answer the question using
a single word or phrase."). End marker: ``<|im_end|>``.

Images: a context with one image is read in AnyRes tiles (its token count follows the image's size); a context
with several (every few-shot context) reads each image as one base tile plus a newline token, as the model was
trained on multi-image data. The processor says which by ``batch_num_images``; collation and packing keep one
count per context, which the model reads as a flat list over images.
"""

from __future__ import annotations

import torch

from symdpo.models.hf import tiny
from symdpo.models.hf.families.base import Family
from symdpo.models.hf.families.parts import ATTENTION, QWEN_VQA, chat_formats, encode_with, pad_images

PROMPTS = chat_formats("<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n",
                       vqa="\n{question}\n" + QWEN_VQA, caption="\nDescribe the image in one sentence.")
KEYS = ("num_image_tokens", "vision_feature_select_strategy", "vision_aspect_ratio")  # saved with a full save
IMAGE = "<image>"  # the processor's image token, standing for one image in its text


def _images(rows: list[dict]) -> dict:
    """Return the rows' images as one flat batch: tiles zero-padded to the most, sizes, per-context counts."""
    with_images = [r for r in rows if "pixel_values" in r]
    if not with_images:
        return {}
    pixels = [p for r in with_images for p in r["pixel_values"]]  # each (tiles, 3, S, S)
    return {"pixel_values": pad_images(pixels, tuple(pixels[0].shape[1:])),
            "image_sizes": torch.cat([r["image_sizes"] for r in with_images]),
            "batch_num_images": torch.cat([r["batch_num_images"] for r in with_images])}


def collate(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return a batch's pixel_values (images, tiles, 3, S, S), image_sizes and per-context image counts."""
    return _images(rows)


def pack(rows: list[dict]) -> dict:
    """Return several pairs' images as one row's, each context's image count kept (AnyRes stays per context)."""
    return _images(rows)


def build_processor(cls, images, tok, sizes: dict):
    """Return the processor (image-only) with the release's image token count and feature selection."""
    settings = {k: sizes[k] for k in KEYS if k in sizes}
    return tiny.image_only(cls)(image_processor=images, tokenizer=tok, chat_template=getattr(tok, "chat_template", None),
                                **{"num_image_tokens": 729, "vision_feature_select_strategy": "full", **settings})


def sizes(config) -> dict:
    """Return the processor settings the model's config implies: base-tile tokens, feature selection, AnyRes cap."""
    v = config.vision_config
    return {"num_image_tokens": (v.image_size // v.patch_size) ** 2,
            "vision_feature_select_strategy": config.vision_feature_select_strategy,
            "vision_aspect_ratio": config.vision_aspect_ratio}


def tiny_model(variant: str | None = None) -> tiny.Tiny:
    """LLaVA-OneVision: 32-px tiles of 16 tokens, AnyRes up to 2x2 tiles, a Qwen2 LM."""
    import transformers as tf

    tok = tiny.tokenizer([IMAGE, "<video>", "<|im_start|>", "<|im_end|>"])
    grid = [[32, 32], [32, 64], [64, 32], [64, 64]]
    ip = tf.LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32},
                                            image_grid_pinpoints=grid)
    vision = dict(tiny.VISION, model_type="siglip_vision_model")
    cfg = tf.LlavaOnevisionConfig(text_config=dict(model_type="qwen2", **tiny.text_config(tok)), vision_config=vision,
                                  image_token_id=tok.convert_tokens_to_ids(IMAGE),
                                  video_token_id=tok.convert_tokens_to_ids("<video>"), image_grid_pinpoints=grid,
                                  vision_feature_select_strategy="full", vision_feature_layer=-1,
                                  tie_word_embeddings=False)
    processor = build_processor(tf.LlavaOnevisionProcessor, ip, tok, sizes(cfg))
    return tiny.Tiny(processor, cfg, "LlavaOnevisionForConditionalGeneration")


FAMILY = Family(
    name="llava_onevision", model_types=("llava_onevision",), model_classes=("LlavaOnevisionForConditionalGeneration",),
    processor_class="LlavaOnevisionProcessor", image_processor_class="LlavaOnevisionImageProcessorPil",
    placeholder=IMAGE, end_markers=("<|im_end|>",), prompts={"llava_onevision": PROMPTS},
    default_policy="lora", lora_targets=ATTENTION, vision="model.vision_tower", connector=("model.multi_modal_projector",),
    xattn=(), lm="model.language_model", encode=encode_with(IMAGE, nested=True), collate=collate, pack=pack,
    build_processor=build_processor, processor_sizes=sizes, processor_keys=KEYS, tiny=tiny_model,
)
