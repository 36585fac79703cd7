"""Which parameters of an HF family a fine-tune trains.

* ``full``: everything but the vision tower (kept frozen, as in Flamingo and the SymDPO recipe).
* ``lora``: LoRA adapters (peft) on the language model's attention projections; nothing else.
* ``connector``: the vision-to-LM bridge only (IDEFICS v1: perceiver resampler + gated cross-attention, the
  Flamingo set the SymDPO paper trains; Idefics3/SmolVLM: the projector; Qwen2-VL: the patch merger).

Defaults (``Family.default_policy``): IDEFICS v1 ``connector`` (it *is* a Flamingo: the paper's setting);
Idefics3/SmolVLM and Qwen2-VL ``lora`` (their connector is one projection in front of the LM, too small a
lever for learning to read symbols off demonstration images, while full tuning of a 2-8B LM is rarely wanted).

The `symdpo train` recipes do not call `apply_policy`: they freeze all but ``model.perceiver`` and
``model.xattn`` (here: the connector set) and add LoRA when ``lora.enabled`` — i.e. ``connector`` (+ LoRA).
"""

from __future__ import annotations

from torch import nn

POLICIES = ("full", "lora", "connector")


def apply_policy(lmm, policy: str | None = None, *, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                 target_modules: list[str] | None = None) -> list[nn.Parameter]:
    """Set ``requires_grad`` for ``policy`` (the family default when None); return the trainable parameters."""
    policy = policy or lmm.family.default_policy
    if policy not in POLICIES:
        raise ValueError(f"unknown trainable policy {policy!r}; choose one of {', '.join(POLICIES)}")
    module = lmm.model
    module.requires_grad_(False)
    if policy == "full":
        module.requires_grad_(True)
        module.vision.requires_grad_(False)
    elif policy == "connector":
        module.perceiver.requires_grad_(True)
        module.xattn.requires_grad_(True)
    else:
        from peft import LoraConfig, inject_adapter_in_model

        targets = list(target_modules or lmm.family.lora_targets)
        # in place on the LM only (not get_peft_model): parameter names and the wrapper stay as they are
        inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets),
                                module.lm)
        for name, p in module.named_parameters():
            p.requires_grad_("lora_" in name)
    return [p for p in module.parameters() if p.requires_grad]
