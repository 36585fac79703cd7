"""IDEFICS v1 (base and instruct): a Flamingo on LLaMA, fed through its processor's prompt lists.

Formats: the base model is prompted as pretraining text (``Question: {q} Answer:{a}``, ``Caption:{c}``) and
evaluated in OpenFlamingo's wording, as the SymDPO paper evaluated base IDEFICS; the instruct model in its
model card's conversation, ``User:{image}{q}<end_of_utterance>\\nAssistant: {a}<end_of_utterance>\\n`` (IDEFICS v1
ships no chat template). End marker: ``<end_of_utterance>``, or ``"\\n"`` for a tokenizer without it.
"""

from __future__ import annotations

import torch

from symdpo.models.hf import tiny
from symdpo.models.hf.families.base import Family
from symdpo.models.hf.families.parts import ATTENTION, chat_formats, pad_images
from symdpo.models.prompts import PromptFormat

PROMPTS = {
    "idefics": {
        "vqa": PromptFormat(demo="{image}Question: {question} Answer:{answer}{end}",
                            query="{image}Question: {question} Answer:", separator=""),
        "caption": PromptFormat(demo="{image}Caption:{caption}{end}", query="{image}Caption:", separator=""),
    },
    "idefics-instruct": chat_formats("User:", "<end_of_utterance>\n", "Assistant: ", vqa="{question}",
                                     caption="Describe the image briefly."),
}


def encode(processor, items: list) -> tuple[list[int], dict]:
    """Return the token ids and image tensors of one IDEFICS v1 context (its processor's prompt-list form)."""
    # The processor writes <fake_token_around_image><image><fake_token_around_image> per image and a BOS first;
    # end-of-utterance tokens are ours to write (the markers), so its own insertion is off.
    prompt = [it for it in items if not (isinstance(it, str) and not it)]
    out = processor(text=[prompt or [""]], add_end_of_utterance_token=False, return_tensors="pt")
    n = sum(not isinstance(it, str) for it in items)
    return out["input_ids"][0].tolist(), {"pixel_values": out["pixel_values"][0, :n]}


def collate(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return pixel_values (B, N, 3, S, S) and the image_attention_mask (B, T, N) of an IDEFICS v1 batch."""
    from transformers.models.idefics.processing_idefics import (
        image_attention_mask_for_packed_input_ids,
        incremental_to_binary_attention_mask,
    )

    size = processor.image_processor.image_size
    pixels = pad_images([r["pixel_values"] for r in rows], (3, size, size))
    if all(r["pixel_values"].shape[0] == 0 for r in rows):  # text only: the processor's all-zero mask
        return {"pixel_values": pixels, "image_attention_mask": torch.zeros(*input_ids.shape, 1, dtype=torch.long)}
    # the processor's own rule (each token attends to the latest image before it), recomputed on the final ids
    # so that appended answer tokens and left padding get exactly the mask the processor would give them
    incremental, _ = image_attention_mask_for_packed_input_ids(input_ids.clone(), processor.tokenizer, "pt")
    mask = incremental_to_binary_attention_mask(incremental, "pt", num_classes=pixels.shape[1])
    return {"pixel_values": pixels, "image_attention_mask": mask}


def build_processor(cls, images, tok, sizes: dict):
    """Return IDEFICS v1's processor (no chat template: the release ships none)."""
    return cls(images, tok, image_size=sizes.get("image_size", images.image_size))


def tiny_model(variant: str | None = None) -> tiny.Tiny:
    """IDEFICS v1: 32-px images, a one-layer perceiver, cross-attention after every layer, open gates."""
    import transformers as tf

    tok = tiny.tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
    processor = tf.IdeficsProcessor(tf.IdeficsImageProcessorPil(image_size=32), tok, image_size=32)
    cfg = tf.IdeficsConfig(
        vocab_size=len(tok), **tiny.TEXT, **tiny.ids(tok),
        vision_config=dict(embed_dim=32, image_size=32, patch_size=16, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=64),
        perceiver_config=dict(resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2, resampler_head_dim=8),
        use_resampler=True, cross_layer_interval=1,
        alpha_initializer="ones",  # open gates (the release's are trained), so images change the output
    )
    return tiny.Tiny(processor, cfg, "IdeficsForVisionText2Text")


# IDEFICS v1 is a Flamingo: its default is the SymDPO paper's setting (perceiver, cross-attention, new rows)
FAMILY = Family(
    name="idefics", model_types=("idefics",), model_classes=("IdeficsForVisionText2Text",),
    processor_class="IdeficsProcessor", image_processor_class="IdeficsImageProcessorPil",
    placeholder=None, end_markers=("<end_of_utterance>", "\n"), prompts=PROMPTS, base_prompts=("idefics",),
    default_policy="openflamingo", lora_targets=ATTENTION, vision="model.vision_model",
    connector=("model.perceiver_resampler",), xattn=("model.gated_cross_attn_layers",), lm="model.layers",
    encode=encode, collate=collate, gates=("alpha_cross_attn", "alpha_dense"), build_processor=build_processor,
    processor_keys=("image_size",), tiny=tiny_model, new_tokens=("model.embed_tokens.additional_embedding", "lm_head.additional_fc"),
)
