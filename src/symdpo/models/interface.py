"""The interleaved-model contract: the one seam between models and the rest of symdpo.

A *context* is an interleaved list of text segments and images, in reading order. Images are
``PIL.Image.Image`` or, for families that take them, ``torch.Tensor`` vision features from
``image_features`` (the feature cache hands these back). Text is plain text: the model writes its own image
tokens where an image item stands. Contexts and answers use the model-agnostic end-of-answer marker
``<|endofchunk|>`` (``prompts.AGNOSTIC_END``) or the model's own ``end_of_chunk``; a family reads either.

Evaluation and inference use only what `InterleavedModel` declares, training only what `TrainableModel` adds,
as lm-evaluation-harness' ``LM`` declares what its harness calls; they never import a family package and never
match parameter names. Both are abstract base classes: a family (models/flamingo/lmm.py, models/hf/adapter.py)
that misses a member cannot be instantiated.
What trains is the family's decision (`TrainingSpec` names a policy; the family returns the optimiser's
groups), as torchtune's models say which of their parameters train.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from PIL import Image

from symdpo.models.policies import Policy
from symdpo.models.prompts import AGNOSTIC_END, PromptFormat

ImageItem = Union[Image.Image, torch.Tensor]
Context = list[Union[str, ImageItem]]


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapters on the language model (peft); ``target_modules`` None: the family's attention projections."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] | None = None


@dataclass(frozen=True)
class TrainingSpec:
    """What a fine-tune asks of the model; the family turns it into trainable parameters and groups."""

    policy: Policy | None = None  # None: the family's default
    weight_decay: float = 0.0  # the family says which parameters it applies to
    train_embeddings: bool = True  # the new tokens' embedding rows (openflamingo policy)
    train_lm: bool = False  # the whole language model too
    train_vision: bool = False  # the vision tower too
    train_vision_to_text: bool = True  # False: freeze perceiver / cross-attention / connector
    gate_init: float | None = None  # every cross-attention gate starts here (families with gates)
    lora: LoraSpec | None = None  # adapters beside any policy (the lora policy uses LoraSpec() when None)
    gradient_checkpointing: bool = False
    # a family's own knobs by name, ignored by the families without them (Flamingo's: FLAMINGO_OPTIONS in
    # models/flamingo/training.py)
    family_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ParamGroup:
    """One AdamW group: its parameters, their names (for tests and logs) and their weight decay."""

    name: str
    names: list[str]
    params: list[torch.nn.Parameter]
    weight_decay: float

    def as_optimizer_group(self) -> dict[str, Any]:
        """Return the group as ``torch.optim`` takes it."""
        return {"params": self.params, "weight_decay": self.weight_decay, "group": self.name}


@dataclass
class ModelInfo:
    """What ``symdpo model info`` prints about a model."""

    family: str
    parameters: int
    trainable: int  # under the family's default policy
    default_policy: str
    parts: dict[str, int] = field(default_factory=dict)  # part name -> parameters
    prompt_style: str = "openflamingo"
    end_of_chunk: str = AGNOSTIC_END


class InterleavedModel(ABC):
    """What inference asks of every model (Flamingo and the HF-native families alike): scoring, generation,
    prompt formats, image features; a family subclasses `TrainableModel`, which adds what training asks."""

    family: str  # "flamingo", "idefics", "qwen2_vl", ...
    end_of_chunk: str  # the family's text that ends an answer / a demonstration
    default_prompt_style: str  # "native" for chat/instruct models, "openflamingo" otherwise
    takes_image_features: bool  # contexts may carry `image_features` output in place of images (feature cache)
    source: str | None  # preset name or folder it was loaded from (the base of a fine-tune save)

    @property
    @abstractmethod
    def module(self) -> torch.nn.Module:
        """Return every parameter of the model as one module (what a launcher wraps, shards and checkpoints)."""

    @property
    def device(self) -> torch.device:
        """Return the device of the model's parameters."""
        return next(self.module.parameters()).device

    def train(self, mode: bool = True) -> None:
        """Put the model in training (or inference) mode."""
        self.module.train(mode)

    # ---- inputs ---------------------------------------------------------------------------------------------
    @abstractmethod
    def tokenize(self, contexts: list[Context], answers: list[str] | None = None) -> Any:
        """Return the family's left-padded token batch of ``contexts`` (+ ``answers``), images alongside."""

    @abstractmethod
    def image_features(self, images: list) -> torch.Tensor:
        """Return (N, v, D) vision features of images (for the feature cache and retrieval)."""

    def image_cache(self) -> AbstractContextManager:
        """Return a context (no gradients) in which the model processes and encodes each distinct image once.

        Entering it gives an object with ``encoded`` and ``hits`` counts, or None where the model keeps no
        cache of its own (this default: the harness caches its ``image_features`` instead).
        """
        return nullcontext()

    # ---- scoring and generation -----------------------------------------------------------------------------
    @abstractmethod
    def answer_logps(self, contexts: list[Context], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (B,) summed log-probs of each answer given its context and (B,) answer token counts (differentiable)."""

    @abstractmethod
    def pair_logps(self, contexts: list[Context], chosen: list[str], rejected: list[str], *,
                   shared_prefix: bool = True, max_tokens_per_row: int | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return chosen and rejected summed log-probs (B,) each and their token counts; ``shared_prefix`` runs the context once.

        ``max_tokens_per_row`` packs the pairs into rows of at most that many tokens (models/packing.py); a
        family that cannot pack raises ValueError naming ``data.max_tokens_per_batch``.
        """

    def score(self, contexts: list[Context], answers: list[str]) -> torch.Tensor:
        """Return (B,) summed log-probabilities of each answer given its context (answer tokens only)."""
        with torch.no_grad():
            return self.answer_logps(contexts, answers)[0]

    @abstractmethod
    def answer_token_counts(self, answers: list[str], contexts: list[Context] | None = None) -> list[int]:
        """Return how many tokens each answer scores after its context (the loss normaliser; text is enough)."""

    @abstractmethod
    def generate(self, contexts: list[Context], *, max_new_tokens: int = 20, num_beams: int = 1,
                 length_penalty: float = 1.0) -> list[str]:
        """Return the decoded continuation of each context, stopped at ``end_of_chunk`` (marker removed)."""

    # ---- prompts and description ----------------------------------------------------------------------------
    @abstractmethod
    def prompt_format(self, kind: str, style: str | None = None) -> PromptFormat:
        """Return the family's demonstration and query format for task ``kind`` in ``style`` (default: its own)."""

    @abstractmethod
    def info(self) -> ModelInfo:
        """Return the model's family, size, default policy and parts (``symdpo model info``)."""

    @abstractmethod
    def save_pretrained(self, path: str | Path, *, trainable_only: bool = False) -> None:
        """Write the model to ``path`` (a full copy, or the trainable weights over its base)."""


class TrainableModel(InterleavedModel):
    """What training asks of a model besides inference: what trains, a reference copy, the units a sharding
    wrapper makes, the fine-tune's save. A family implements every abstract member; the rest is shared."""

    # ---- what trains ----------------------------------------------------------------------------------------
    @abstractmethod
    def prepare_training(self, spec: TrainingSpec) -> list[ParamGroup]:
        """Set what trains under ``spec`` (policy, adapters, gates); return the optimiser's groups."""

    @abstractmethod
    def _frozen_eval(self) -> list[torch.nn.Module]:
        """Return the towers kept in inference mode while frozen (the vision tower)."""

    def train(self, mode: bool = True) -> None:
        """Put the model in training (or inference) mode; frozen towers stay in inference mode."""
        self.module.train(mode)
        for part in self._frozen_eval():
            if not any(p.requires_grad for p in part.parameters()):
                part.eval()

    # ---- the DPO reference ----------------------------------------------------------------------------------
    @abstractmethod
    def _set_module(self, module: torch.nn.Module) -> None:
        """Replace the module this model runs by ``module`` (`reference_copy` gives its copy a copied one)."""

    def reference_copy(self, *, share_frozen: bool = True) -> TrainableModel:
        """Return a frozen copy in inference mode (the DPO reference); ``share_frozen`` reuses frozen tensors.

        With ``share_frozen`` the copy reuses the policy's frozen tensors (vision tower, LM weights: they never
        change), so it costs only a copy of the trainable set rather than a second whole model.
        """
        import copy

        memo = {}
        if share_frozen:
            memo = {id(p): p for p in self.module.parameters() if not p.requires_grad}
            memo.update({id(b): b for b in self.module.buffers()})
        ref = copy.copy(self)
        ref._set_module(copy.deepcopy(self.module, memo).requires_grad_(False).eval())
        return ref

    # ---- sharding -------------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def shard_units(self) -> tuple[str, ...]:
        """Return the module class names a sharding wrapper (FSDP) makes its units."""

    @property
    def sharded_methods(self) -> dict[type[torch.nn.Module], tuple[str, ...]]:
        """Return, per unit class, the methods the model calls outside the unit's ``forward`` (none by default).

        A sharded unit gathers its weights around ``forward`` only; a method named here that uses them is hooked
        to gather them too (train/sharding.py).
        """
        return {}

    # ---- the fine-tune's save -------------------------------------------------------------------------------
    @abstractmethod
    def _fold_trained(self) -> bool:
        """Put trained extras (new-token rows, adapters) back into the weights; return True if LoRA was merged."""

    def save_finetune(self, path: str | Path) -> None:
        """Write a fine-tune's result: trainable weights over the base, or a full copy once LoRA is merged."""
        merged = self._fold_trained()  # a merged LM differs from the base: it is saved whole
        self.save_pretrained(path, trainable_only=not merged)


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


def decay_groups(named: list[tuple[str, torch.nn.Parameter]], decayed: Callable[[str, torch.nn.Parameter], bool],
                 weight_decay: float) -> list[ParamGroup]:
    """Return the two AdamW groups of the trainable ``named`` parameters: ``decayed`` ones, and the rest."""
    groups = [ParamGroup("decay", [], [], weight_decay), ParamGroup("no_decay", [], [], 0.0)]
    for name, p in named:
        if p.requires_grad:
            g = groups[0] if decayed(name, p) else groups[1]
            g.names.append(name)
            g.params.append(p)
    return groups
