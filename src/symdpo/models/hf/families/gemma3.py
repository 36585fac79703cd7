"""Gemma 3 (instruction-tuned): SigLIP, a pooling projector, a Gemma LM with sliding-window layers.

Format: ``user`` / ``model`` turns closed by ``<end_of_turn>\\n`` as its chat template writes them, with Qwen's
VQA instruction; its tokenizer writes the template's BOS. End marker: ``<end_of_turn>``.
"""

from __future__ import annotations

import torch

from symdpo.models.hf import tiny
from symdpo.models.hf.families.base import Family
from symdpo.models.hf.families.parts import (
    ATTENTION,
    QWEN_VQA,
    additive_mask,
    chat_formats,
    encode_with,
    pack_flat,
    processor_with,
)

PROMPTS = chat_formats("<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>model\n",
                       vqa="{question}\n" + QWEN_VQA, caption="Describe the image in one sentence.")


def tree_attention(hf, visible: torch.Tensor, positions: torch.Tensor, input_ids, dtype) -> dict:
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


def collate(rows: list[dict], input_ids: torch.Tensor, processor) -> dict:
    """Return the concatenated pixel_values of a Gemma 3 batch and its token types (1 on image tokens)."""
    out: dict = {"token_type_ids": (input_ids == processor.tokenizer.image_token_id).long()}
    with_images = [r["pixel_values"] for r in rows if "pixel_values" in r]
    if with_images:
        out["pixel_values"] = torch.cat(with_images)
    return out


def _open_projector(model) -> None:
    # its projector starts at zero (the release's is trained): images would do nothing
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.5)


def tiny_model(variant: str | None = None) -> tiny.Tiny:
    """Gemma 3: the processor reads its image tokens off the tokenizer's named special tokens; a 16-token window."""
    import transformers as tf

    tok = tiny.tokenizer(["<start_of_image>", "<image_soft_token>", "<end_of_image>", "<start_of_turn>",
                          "<end_of_turn>"], named={"boi_token": "<start_of_image>", "image_token": "<image_soft_token>",
                                                   "eoi_token": "<end_of_image>"})
    tiny.add_bos(tok)  # Gemma's tokenizer starts every text with its BOS (the template's {{ bos_token }})
    processor = tf.Gemma3Processor(tf.Gemma3ImageProcessorPil(size={"height": 32, "width": 32}), tok,
                                   image_seq_length=4)
    gemma = dict(tiny.text_config(tok), head_dim=8, sliding_window=16, layer_types=["sliding_attention", "full_attention"])
    cfg = tf.Gemma3Config(text_config=gemma, vision_config=tiny.VISION, mm_tokens_per_image=4,
                          boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
                          eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
                          image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"), tie_word_embeddings=False)
    return tiny.Tiny(processor, cfg, "Gemma3ForConditionalGeneration", init=_open_projector)


FAMILY = Family(
    name="gemma3", model_types=("gemma3",), model_classes=("Gemma3ForConditionalGeneration",),
    processor_class="Gemma3Processor", image_processor_class="Gemma3ImageProcessorPil",
    placeholder="<start_of_image>", end_markers=("<end_of_turn>",), prompts={"gemma3": PROMPTS}, default_policy="lora",
    lora_targets=ATTENTION, vision="model.vision_tower", connector=("model.multi_modal_projector",), xattn=(),
    lm="model.language_model", encode=encode_with("<start_of_image>", nested=True), collate=collate,
    tree_attention=tree_attention, pack=pack_flat, build_processor=processor_with("image_seq_length", 256),
    processor_sizes=lambda c: {"image_seq_length": int(c.mm_tokens_per_image)},
    processor_keys=("image_seq_length",), tiny=tiny_model,
)
