"""What the training recipes and the eval CLI reach for on ``lmm.model`` / ``lmm.tokenizer``, for HF models.

The recipes were written against `FlamingoLMM`: they freeze all but ``model.perceiver`` and ``model.xattn``
(+ the input-embedding rows of ``<image>`` and ``<|endofchunk|>``), put LoRA on ``model.lm``, keep
``model.vision`` in eval mode and enable gradient checkpointing on ``model``. `HFModule` offers those names as
*views* onto the HF model (perceiver = the family's connector, xattn = IDEFICS' gated cross-attention or
nothing), so the recipes run unchanged; parameter names stay the HF model's own (``hf.<name>``).
"""

from __future__ import annotations

import torch
from torch import nn

from symdpo.models.hf.families import AGNOSTIC_END, Family, get_path


class _Group(nn.Module):
    """Modules gathered under one name without owning them (so `requires_grad_` reaches all of them)."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(modules)


class IdeficsLM(nn.Module):
    """IDEFICS v1's language model as one module: its decoder layers, norm, embeddings and head (not the vision)."""

    def __init__(self, hf):
        super().__init__()
        self.config = hf.config
        self.layers, self.norm = hf.model.layers, hf.model.norm
        self.embed_tokens, self.lm_head = hf.model.embed_tokens, hf.lm_head

    def get_input_embeddings(self) -> nn.Module:
        """Return the input embedding module."""
        return self.embed_tokens


class HFModule(nn.Module):
    """The HF model (registered as ``hf``) with the Flamingo-style part names as unregistered views."""

    def __init__(self, hf: nn.Module, family: Family):
        super().__init__()
        self.hf = hf
        self.family_name = family.name
        # views are kept out of _modules: registering them would give each parameter a second name
        object.__setattr__(self, "_family", family)

    def _view(self, paths: tuple[str, ...]) -> nn.Module:
        mods = [get_path(self.hf, p) for p in paths]
        return mods[0] if len(mods) == 1 else _Group(mods)

    @property
    def perceiver(self) -> nn.Module:
        """The vision-to-LM connector (IDEFICS: perceiver resampler; Idefics3: projector; Qwen2-VL: merger)."""
        return self._view(self._family.connector)

    @property
    def xattn(self) -> nn.Module:
        """IDEFICS v1's gated cross-attention layers; an empty module for families without them."""
        return self._view(self._family.xattn) if self._family.xattn else _Group([])

    @property
    def vision(self) -> nn.Module:
        """The vision tower."""
        return get_path(self.hf, self._family.vision)

    @property
    def lm(self) -> nn.Module:
        """The language model (decoder stack with the input embeddings)."""
        return IdeficsLM(self.hf) if self._family.lm is None else get_path(self.hf, self._family.lm)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the HF model recomputes activations in backward."""
        return bool(getattr(self.hf, "is_gradient_checkpointing", False))

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        """Turn on the HF model's gradient checkpointing (non-reentrant: frozen inputs still get gradients)."""
        kwargs.setdefault("gradient_checkpointing_kwargs", {"use_reentrant": False})
        self.hf.gradient_checkpointing_enable(**kwargs)

    def forward(self, **inputs) -> torch.Tensor:
        return self.hf(**inputs)


class RecipeTokenizer:
    """The family tokenizer, except that the Flamingo token names map to the family's own tokens.

    The recipe trains only the embedding rows it finds with ``convert_tokens_to_ids(["<|endofchunk|>",
    "<image>"])``; for an HF family those are its end-of-answer marker and its image token. Everything else is
    the tokenizer itself.
    """

    def __init__(self, tokenizer, *, end_of_chunk: str, image_token: str):
        object.__setattr__(self, "_tok", tokenizer)
        object.__setattr__(self, "_names", {AGNOSTIC_END: end_of_chunk, "<image>": image_token})

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._tok)

    def convert_tokens_to_ids(self, tokens):
        """Return the ids of ``tokens``, reading the Flamingo token names as the family's tokens."""
        if isinstance(tokens, str):
            return self._tok.convert_tokens_to_ids(self._names.get(tokens, tokens))
        return [self.convert_tokens_to_ids(t) for t in tokens]
