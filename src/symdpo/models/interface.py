"""The interleaved-model protocol: the one seam between models and the rest of symdpo.

A *context* is an interleaved list of text segments and images, in reading order. Images are
``PIL.Image.Image`` (preprocessed by the model) or ``torch.Tensor`` vision features already computed by
``model.encode_images`` (the feature cache hands these back). Text is plain text: the model inserts its own
image placeholder (``<image>`` for Flamingo) where an image item stands. The end-of-answer marker of the model
(``model.end_of_chunk``, ``<|endofchunk|>`` for Flamingo) is written by the caller into the text, as in the
OpenFlamingo prompts ``<image>Question:{q} Short answer:{a}<|endofchunk|>``.

Training and evaluation only use what is declared here; they never look inside a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Union, runtime_checkable

import torch
from PIL import Image

ImageItem = Union[Image.Image, torch.Tensor]
Context = list[Union[str, ImageItem]]


@runtime_checkable
class InterleavedModel(Protocol):
    """What every model in symdpo offers (Flamingo and the HF-native adapters alike)."""

    end_of_chunk: str  # text that ends an answer / a demonstration

    def score(self, contexts: list[Context], answers: list[str]) -> torch.Tensor:
        """Return (B,) summed log-probabilities of each answer given its context (answer tokens only)."""
        ...

    def generate(
        self,
        contexts: list[Context],
        *,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        length_penalty: float = 1.0,
    ) -> list[str]:
        """Return the decoded continuation of each context, stopped at ``end_of_chunk`` (marker removed)."""
        ...

    def save_pretrained(self, path: str | Path) -> None:
        """Write the model to ``path`` (safetensors + JSON config)."""
        ...


def context_text(context: Context, placeholder: str) -> tuple[str, list]:
    """Return the context's text with ``placeholder`` where each image stands, and its images in order."""
    parts, images = [], []
    for item in context:
        if isinstance(item, str):
            parts.append(item)
        else:
            parts.append(placeholder)
            images.append(item)
    return "".join(parts), images
