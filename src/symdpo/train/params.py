"""What a fine-tune trains: OpenFlamingo's set, the new-token gradient mask, decay groups, optional LoRA."""

from __future__ import annotations

import torch
from torch import nn

from symdpo.models.flamingo.build import new_token_rows, set_openflamingo_trainable


def add_lora(lm: nn.Module, *, r: int, alpha: float, dropout: float, target_modules: list[str]) -> None:
    """Inject LoRA adapters into ``lm`` in place (the LM keeps its class and parameter names)."""
    from peft import LoraConfig, inject_adapter_in_model

    # in place rather than get_peft_model: Flamingo holds the LM and has fused cross-attention into its layers
    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules), lm)


def merge_lora(lm: nn.Module) -> None:
    """Fold every LoRA adapter of ``lm`` into its base weights and remove the adapter modules."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(lm.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent = lm.get_submodule(name.rpartition(".")[0]) if "." in name else lm
            setattr(parent, name.rpartition(".")[2], module.get_base_layer())


def set_trainable(model: nn.Module, *, train_embeddings: bool, lora: bool) -> list[nn.Parameter]:
    """Freeze all but OpenFlamingo's trainable set (+ LoRA weights); return the trainable parameters."""
    set_openflamingo_trainable(model, train_embeddings=train_embeddings)
    if lora:
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def mask_embedding_grads(model: nn.Module, tokenizer) -> torch.Tensor | None:
    """Zero the input-embedding gradient outside the new tokens' rows (a hook); return the row mask."""
    weight = model.lm.get_input_embeddings().weight
    if not weight.requires_grad:
        return None
    keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    keep[new_token_rows(tokenizer)] = 1
    # OpenFlamingo trains only <image>, <|endofchunk|> (and <PAD>): the LM's own vocabulary stays as released.
    # A hook (not a post-backward edit) so the mask is applied before gradient clipping measures the norm.
    weight.register_hook(lambda g: g * keep.to(g.dtype))
    return keep


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Return AdamW groups: decay on the gated cross-attention parameters only, none elsewhere."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            # OpenFlamingo's train_utils / the SymDPO scripts decay `gated_cross_attn` params only (ours: xattn.*)
            (decay if name.startswith("xattn.") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def trainable_named(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return {name: tensor} of the trainable parameters, detached (what a checkpoint stores)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
