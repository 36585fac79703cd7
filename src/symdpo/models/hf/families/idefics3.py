"""Idefics3 and SmolVLM (Idefics3's architecture): SigLIP, a pixel-shuffle connector, a Llama-style LM.

Formats: their chat template's text (``User:`` / ``Assistant:`` roles, ``<end_of_utterance>\\n`` after every
turn, a space after ``Assistant:``) with the BOS the template writes as the prefix (Idefics3
``<|begin_of_text|>``, SmolVLM ``<|im_start|>``) and the VQA instruction "Give a very brief answer.".
End marker: ``<end_of_utterance>``.
"""

from __future__ import annotations

from symdpo.models.hf import tiny
from symdpo.models.hf.families.base import Family
from symdpo.models.hf.families.parts import (
    ATTENTION,
    chat_formats,
    collate_nested,
    encode_with,
    pack_nested,
    processor_with,
)

IMAGE = "<image>"  # the processor's image token, standing for one image in its text


def end_of_utterance_formats(prefix: str = "") -> dict:
    """Return the Idefics2/3 chat template's vqa and caption formats (``prefix``: the BOS it writes)."""
    return chat_formats("User:", "<end_of_utterance>\n", "Assistant: ", vqa="{question}\nGive a very brief answer.",
                        caption="Caption the image in one sentence.", prefix=prefix)


def sizes(config) -> dict:
    """Return Idefics3's image tokens per image: its patches, merged by the pixel shuffle."""
    v = config.vision_config
    return {"image_seq_len": int(((v.image_size // v.patch_size) ** 2) / (config.scale_factor ** 2))}


def tiny_model(variant: str | None = None) -> tiny.Tiny:
    """Idefics3 (``variant="smolvlm"``: SmolVLM's classes): 4 image tokens per image after the pixel shuffle."""
    import transformers as tf

    tok = tiny.tokenizer(["<fake_token_around_image>", IMAGE, "<end_of_utterance>", "<global-img>"])
    ip = tf.Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    processor = tf.Idefics3Processor(ip, tok, image_seq_len=4)
    cls = tf.SmolVLMConfig if variant == "smolvlm" else tf.Idefics3Config
    cfg = cls(text_config=dict(model_type="llama", **tiny.text_config(tok)), vision_config=tiny.VISION,
              scale_factor=2, image_token_id=tok.convert_tokens_to_ids(IMAGE), tie_word_embeddings=False)
    model = "SmolVLMForConditionalGeneration" if variant == "smolvlm" else "Idefics3ForConditionalGeneration"
    return tiny.Tiny(processor, cfg, model)


# the chat families default to LoRA: their connector is one projection in front of the LM, too small a lever for
# learning to read symbols off demonstration images, and full tuning of a 2-8B LM is rarely wanted
FAMILY = Family(
    name="idefics3", model_types=("idefics3", "smolvlm"),
    model_classes=("Idefics3ForConditionalGeneration", "SmolVLMForConditionalGeneration"),
    processor_class="Idefics3Processor", image_processor_class="Idefics3ImageProcessorPil",
    placeholder=IMAGE, end_markers=("<end_of_utterance>",),
    prompts={"idefics3": end_of_utterance_formats("<|begin_of_text|>"), "smolvlm": end_of_utterance_formats("<|im_start|>")},
    default_policy="lora", lora_targets=ATTENTION, vision="model.vision_model", connector=("model.connector",),
    xattn=(), lm="model.text_model", encode=encode_with(IMAGE, nested=True), collate=collate_nested,
    prefill_once=True, pack=pack_nested, build_processor=processor_with("image_seq_len", 169), processor_sizes=sizes,
    processor_keys=("image_seq_len",), tiny=tiny_model,
)
