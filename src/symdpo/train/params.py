"""The optimiser over the groups a model gives for its training policy, and the trainable state a checkpoint keeps."""

from __future__ import annotations

import torch
from torch import nn

from symdpo.models.interface import ParamGroup


def adamw(groups: list[ParamGroup], *, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
          fused: bool = False) -> torch.optim.AdamW:
    """Return AdamW over the model's ``groups``; ``fused`` (for CUDA) updates in one kernel per group.

    The fused kernel is faster than the default multi-tensor one and makes none of its full-size temporaries
    (OpenFlamingo-3B: a 3.5 GiB fp32 copy of the trainable set at every step).
    """
    return torch.optim.AdamW([g.as_optimizer_group() for g in groups if g.params], lr=lr, betas=betas, eps=eps,
                             fused=fused or None)


def trainable_named(module: nn.Module) -> dict[str, torch.Tensor]:
    """Return {name: tensor} of the trainable parameters, detached (what a checkpoint stores)."""
    return {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}
