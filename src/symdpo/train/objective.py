"""What a recipe (sft.py, dpo.py) plugs into the training loop: its loss, normalisers and metrics."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class Objective(Protocol):
    """What a recipe plugs into the loop."""

    plot_keys: list[str]

    def denominators(self, indices: list[int]) -> dict[str, float]:
        """Return the global counts of one optimiser step (pairs, answer tokens) used to normalise losses."""

    def micro_step(self, scorer: nn.Module, indices: list[int], totals: dict[str, float],
                   world: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return (loss to backpropagate, per-example tensors to gather for metrics)."""

    def metrics(self, gathered: dict[str, torch.Tensor], indices: list[int], totals: dict[str, float]) -> dict[str, float]:
        """Return the step's logged metrics from the per-example tensors of every process."""
