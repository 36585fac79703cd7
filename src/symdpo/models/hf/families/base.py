"""What an HF family entry holds (`Family`), and reaching a family's parts inside a transformers model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from symdpo.models.prompts import PromptFormat


@dataclass(frozen=True, kw_only=True)
class Family:
    """How one HF family is driven by the adapter (keyword-only: an entry names every part it sets)."""

    name: str
    model_types: tuple[str, ...]  # transformers config model_type values of the family (hub ids without a preset)
    model_classes: tuple[str, ...]  # transformers classes of the family (the first is the default)
    processor_class: str
    image_processor_class: str  # the PIL backend: it needs no torchvision
    placeholder: str | None  # text standing for one image in the processor's text; None: IDEFICS prompt lists
    end_markers: tuple[str, ...]
    # its native few-shot formats, by name (a preset names one; a hub id takes its model type's, else the family's)
    prompts: dict[str, dict[str, PromptFormat]]
    default_policy: str  # what a run without model.policy trains (models/policies.py; the reason beside each entry)
    lora_targets: tuple[str, ...]  # LM module names LoRA wraps
    vision: str  # attribute path of the vision tower under the HF model
    connector: tuple[str, ...]  # vision-to-LM bridge (perceiver / projector / merger)
    xattn: tuple[str, ...]  # gated cross-attention (IDEFICS v1 only)
    lm: str  # the language model's decoder stack (LoRA goes here, never into the cross-attention)
    encode: Callable  # (processor, items: list[str | PIL]) -> (ids, per-row image tensors)
    collate: Callable  # (rows' image tensors, padded input_ids, processor) -> model kwargs
    base_prompts: tuple[str, ...] = ()  # formats of base (not instruction-tuned) models: prompted as OpenFlamingo
    positions: Callable | None = None  # (hf, context batch, answer widths) -> position ids of a tree row
    tree_attention: Callable | None = None  # (hf, visible, positions, ids, dtype) -> the row's attention mask(s)
    gates: tuple[str, ...] = ()  # names of the cross-attention gate parameters (under ``xattn``)
    new_tokens: tuple[str, ...] = ()  # modules holding the embeddings of tokens the family added (trained)
    image_cache: bool = False  # processor and vision outputs stack images by rows: evaluation caches them (image_cache.py)
    prefill_once: bool = False  # beam search may continue from one prefill per context (tested equal to HF's own)
    pack: Callable | None = None  # (pairs' image tensors) -> one packed row's; None: the family cannot pack
    # (processor class, image processor, tokenizer, saved sizes) -> the processor; default: built image-only
    build_processor: Callable | None = None
    processor_sizes: Callable | None = None  # (hf config) -> the sizes a processor built from parts needs
    processor_keys: tuple[str, ...] = ()  # the processor's own settings a full save keeps (read back as sizes)
    tiny: Callable | None = None  # (variant) -> tiny.Tiny: the offline random model of the family (tests, CPU)

    def prompt_style(self, prompts: str) -> str:
        """Return the style a model with format ``prompts`` is prompted in by default (OpenFlamingo's for base models)."""
        return "openflamingo" if prompts in self.base_prompts else "native"


def get_path(module: torch.nn.Module, path: str) -> torch.nn.Module:
    """Return the submodule at dotted ``path`` (``""`` is the module itself)."""
    return module.get_submodule(path) if path else module


def find_path(module: torch.nn.Module, path: str) -> torch.nn.Module | None:
    """Return the submodule at dotted ``path``, or None when the model has none there."""
    try:
        return get_path(module, path)
    except AttributeError:
        return None
