"""What the tiny random HF models share (tests, CPU demo): tokenizers, text and vision sizes, image-only processors.

Tokenizers are `train_tiny_tokenizer()` plus the family's special tokens; image processors are the PIL
backends (no torchvision) at 32-64 px. Weights are seeded, so a tiny preset rebuilds identically (a
trainable-only save over it reloads exactly). Each family module's ``tiny_model`` builds its own
(its entry's ``tiny``); `families.tiny_model` asks the entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from symdpo.models.tokenizers import train_tiny_tokenizer

TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512)


def tokenizer(specials: list[str], named: dict[str, str] | None = None):
    """Return the tiny tokenizer with ``specials`` added (``named``: tokens a processor reads by name)."""
    tok = train_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": specials, "pad_token": "<pad>"})
    if named:  # tokens a processor reads by name (tok.image_token, tok.image_token_id, ...); saved with it
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, bos_token=tok.bos_token,
                                      eos_token=tok.eos_token, pad_token="<pad>", extra_special_tokens=named)
    return tok


def add_bos(tok) -> None:
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


def ids(tok) -> dict:
    """Return the pad / bos / eos ids a config needs."""
    return dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def text_config(tok) -> dict:
    """Return the tiny language model's config fields for ``tok``."""
    return dict(vocab_size=len(tok), num_key_value_heads=2, tie_word_embeddings=False, **TEXT, **ids(tok))


VISION = dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=4,
               intermediate_size=64)
