"""The tokens OpenFlamingo adds to its LM's tokenizer, and how it adds them."""

from __future__ import annotations

# OpenFlamingo's markers are the ones model-agnostic contexts and records write (models/prompts.py)
from symdpo.models.prompts import AGNOSTIC_END as END_OF_CHUNK
from symdpo.models.prompts import IMAGE_MARKER as IMAGE_TOKEN


def add_flamingo_tokens(tokenizer) -> None:
    """Add ``<|endofchunk|>``, ``<image>`` (and ``<PAD>`` when missing) exactly as OpenFlamingo does."""
    # Order matters: the released checkpoints' embedding rows follow it (open_flamingo/src/factory.py).
    tokenizer.add_special_tokens({"additional_special_tokens": [END_OF_CHUNK, IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "<PAD>"})
