"""LoRA adapters (peft) injected in place into a family's language model, and folded back for a save."""

from __future__ import annotations

from torch import nn

from symdpo.models.interface import LoraSpec


def add_lora(lm: nn.Module, lora: LoraSpec, default_targets: list[str] | tuple[str, ...]) -> None:
    """Inject LoRA adapters into ``lm`` in place (it keeps its class and parameter names)."""
    from peft import LoraConfig, inject_adapter_in_model

    # in place rather than get_peft_model: the family keeps holding its LM (Flamingo has fused its
    # cross-attention into the LM's layers), and parameter names keep their prefix
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules or default_targets))
    inject_adapter_in_model(config, lm)


def lora_size(lm: nn.Module, r: int, targets: list[str] | tuple[str, ...]) -> int:
    """Return how many parameters rank-``r`` adapters on ``lm``'s ``targets`` would add (A: r x in, B: out x r)."""
    return sum(r * (m.in_features + m.out_features) for name, m in lm.named_modules()
               if isinstance(m, nn.Linear) and name.rpartition(".")[2] in targets)


def merge_lora(module: nn.Module) -> bool:
    """Fold every LoRA adapter of ``module`` into its base weights and remove the adapters; return True if any."""
    from peft.tuners.lora import LoraLayer

    merged = False
    for name, layer in list(module.named_modules()):
        if isinstance(layer, LoraLayer):
            layer.merge()
            parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            setattr(parent, name.rpartition(".")[2], layer.get_base_layer())
            merged = True
    return merged
