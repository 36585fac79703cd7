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


class NewTokenRows(nn.Module):
    """The new tokens' embedding rows as a parameter of their own, in front of a frozen embedding matrix.

    OpenFlamingo trains only the rows of ``<image>``, ``<|endofchunk|>`` (and ``<PAD>``) by making the whole
    matrix trainable and masking its gradient: every step then holds a full-matrix gradient, and AdamW two
    full-matrix states (MPT-1B: 3 x 103M numbers). Here the matrix is frozen and hooks put these rows in its
    place, in the input lookup and, when the output projection is tied to it, in those logits columns. The
    updates are the same (AdamW is elementwise, and the masked rows' zero gradients moved nothing), as
    tests/train/test_new_token_rows.py checks against the gradient mask. `merge` writes the rows back.
    """

    def __init__(self, lm: nn.Module, ids: list[int]):
        super().__init__()
        embedding = lm.get_input_embeddings()
        weight = embedding.weight
        self.register_buffer("ids", torch.tensor(ids, device=weight.device), persistent=False)
        slot = torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device)
        slot[self.ids] = torch.arange(len(ids), device=weight.device)
        self.register_buffer("slot", slot, persistent=False)  # token id -> row of `rows`, or -1
        self.rows = nn.Parameter(weight.detach()[self.ids].clone())
        self._weight = [weight]  # a list: not registered twice
        self._hooks = [embedding.register_forward_hook(self._lookup)]
        output = lm.get_output_embeddings()
        if output is not None and output.weight is weight:  # tied (MPT-1B): the same rows score those tokens
            self._hooks.append(output.register_forward_hook(self._logits))

    def _lookup(self, module, args, out: torch.Tensor) -> torch.Tensor:
        slot = self.slot[args[0]]
        return torch.where((slot >= 0)[..., None], self.rows[slot.clamp(min=0)].to(out.dtype), out)

    def _logits(self, module, args, out: torch.Tensor) -> torch.Tensor:
        hidden = args[0]
        return out.index_copy(-1, self.ids, (hidden @ self.rows.to(hidden.dtype).T).to(out.dtype))

    @torch.no_grad()
    def merge(self) -> None:
        """Copy the trained rows into the embedding matrix (what a save writes)."""
        self._weight[0][self.ids] = self.rows.to(self._weight[0].dtype)

    def release(self) -> None:
        """Merge the rows, remove the hooks, and leave the matrix trainable as `set_trainable` made it."""
        self.merge()
        for hook in self._hooks:
            hook.remove()
        self._weight[0].requires_grad_(True)


def train_new_token_rows(model: nn.Module, tokenizer) -> NewTokenRows | None:
    """Freeze the input embeddings and train only the new tokens' rows (`NewTokenRows`); return it, or None.

    None when the embeddings are not trainable, or not a plain ``nn.Embedding`` (a scaled or sharded one):
    use `mask_embedding_grads` there.
    """
    embedding = model.lm.get_input_embeddings()
    if not embedding.weight.requires_grad or type(embedding) is not nn.Embedding:
        return None
    embedding.weight.requires_grad_(False)
    model.new_rows = NewTokenRows(model.lm, new_token_rows(tokenizer))
    return model.new_rows


def release_new_token_rows(model: nn.Module) -> None:
    """Undo `train_new_token_rows` (rows merged into the matrix), so the model saves like any other."""
    rows = getattr(model, "new_rows", None)
    if rows is not None:
        rows.release()
        del model.new_rows


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Return AdamW groups: decay on the gated cross-attention parameters only, none elsewhere."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            # OpenFlamingo's train_utils / the SymDPO scripts decay `gated_cross_attn` params only (ours: xattn.*)
            (decay if name.startswith("xattn.") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(model: nn.Module, *, lr: float, weight_decay: float, betas=(0.9, 0.999), eps: float = 1e-8,
          fused: bool = False) -> torch.optim.AdamW:
    """Return AdamW over `param_groups` of ``model``; ``fused`` (for CUDA) updates in one kernel per group.

    The fused kernel is faster than the default multi-tensor one and makes none of its full-size temporaries
    (OpenFlamingo-3B: a 3.5 GiB fp32 copy of the trainable set at every step).
    """
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, fused=fused or None)


def trainable_named(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return {name: tensor} of the trainable parameters, detached (what a checkpoint stores)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
