"""What a fine-tune of an HF family trains, decided here: policies, gates, LoRA and decay groups.

Policies (`policies.POLICIES`), by the parts a `Family` names:

* ``openflamingo``: the vision-to-text layers (IDEFICS v1: perceiver resampler + gated cross-attention, the
  Flamingo set the SymDPO paper trains on IDEFICS-9B; Idefics3/SmolVLM: the connector; Qwen2-VL: the patch
  merger) and the embeddings of the tokens the family added (IDEFICS' decoupled additional embeddings, when
  the checkpoint has them). No other embedding row trains.
* ``connector``: the vision-to-text layers only.
* ``lora``: LoRA adapters (peft) on the language model's attention projections; nothing else (the same
  meaning as Flamingo's; adapters beside another policy: that policy with ``TrainingSpec.lora``).
* ``full``: everything but the vision tower (the connector trains even where it sits inside the tower).

Defaults: each family's entry says its own (``Family.default_policy`` in its module under families/, with the reason).

Weight decay: a family with gated cross-attention decays those layers only (the paper: 0.1 on IDEFICS'
cross-attention); the others decay every trainable matrix (2-D or more), never biases, norms or gates, as
the transformers Trainer does.
"""

from __future__ import annotations

import torch
from torch import nn

from symdpo.models.hf.families import Family, find_path, get_path
from symdpo.models.interface import LoraSpec, ParamGroup, TrainingSpec, decay_groups
from symdpo.models.lora import add_lora
from symdpo.models.policies import POLICIES


def parts(hf: nn.Module, paths: tuple[str, ...]) -> list[nn.Module]:
    """Return the modules of ``hf`` at ``paths`` that the model has."""
    return [m for m in (find_path(hf, p) for p in paths) if m is not None]


def init_gates(hf: nn.Module, family: Family, value: float) -> None:
    """Set every gated cross-attention gate of the family to ``value``; a family without gates refuses."""
    if not family.gates:
        raise ValueError(f"model.gate_init: the {family.name} family has no cross-attention gates; leave it unset")
    with torch.no_grad():
        for part in parts(hf, family.xattn):
            for name, p in part.named_parameters():
                if name.rpartition(".")[2] in family.gates:
                    p.fill_(value)


def param_groups(hf: nn.Module, family: Family, weight_decay: float) -> list[ParamGroup]:
    """Return the AdamW groups of the trainable parameters, with the family's decay rule (module docstring)."""
    if family.xattn:
        xattn = {id(p) for part in parts(hf, family.xattn) for p in part.parameters()}
        return decay_groups(list(hf.named_parameters()), lambda n, p: id(p) in xattn, weight_decay)
    return decay_groups(list(hf.named_parameters()), lambda n, p: p.ndim >= 2 and "norm" not in n, weight_decay)


def prepare_training(hf: nn.Module, family: Family, spec: TrainingSpec) -> list[ParamGroup]:
    """Set ``hf``'s trainable parameters for ``spec``; return the optimiser's groups."""
    policy = spec.policy or family.default_policy
    if policy not in POLICIES:
        raise ValueError(f"unknown training policy {policy!r}; choose one of {', '.join(POLICIES)}")
    lora = spec.lora or (LoraSpec() if policy == "lora" else None)
    if lora is not None:
        add_lora(get_path(hf, family.lm), lora, family.lora_targets)
    hf.requires_grad_(policy == "full")
    vision = get_path(hf, family.vision)
    vision.requires_grad_(spec.train_vision)
    if spec.train_lm:
        get_path(hf, family.lm).requires_grad_(True)
    if spec.train_vision_to_text and policy in ("openflamingo", "connector", "full"):
        for part in parts(hf, family.connector + family.xattn):
            part.requires_grad_(True)
    elif not spec.train_vision_to_text:
        for part in parts(hf, family.connector + family.xattn):
            part.requires_grad_(False)
    if spec.train_embeddings and policy == "openflamingo":
        for part in parts(hf, family.new_tokens):
            part.requires_grad_(True)
    if lora is not None:
        for name, p in hf.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    if spec.gate_init is not None:
        init_gates(hf, family, spec.gate_init)
    if spec.gradient_checkpointing:
        # non-reentrant: frozen inputs still pass gradients to trainable layers above them
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not any(p.requires_grad for p in hf.parameters()):
        raise ValueError(f"policy {policy!r} leaves nothing of this {family.name} model to train")
    return param_groups(hf, family, spec.weight_decay)
