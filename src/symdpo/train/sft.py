"""`symdpo train sft`: token-weighted cross-entropy on the target (SFT records) or chosen (preference) answers.

setup → train → save → cleanup.
"""

from __future__ import annotations

import dataclasses

import torch

from symdpo.train import loop
from symdpo.train.config import TrainConfig
from symdpo.train.dpo import AnswerTokens
from symdpo.train.losses import sft_loss
from symdpo.train.setup import Setup, setup


class SFTObjective:
    """Answer-only NLL, normalised by the answer tokens of the whole optimiser step."""

    plot_keys = ["loss", "lr", "grad_norm"]

    def __init__(self, s: Setup):
        self.s = s
        self.answer_tokens = AnswerTokens(s.lmm, s.dataset)

    def denominators(self, indices: list[int]) -> dict[str, float]:
        return {"tokens": self.answer_tokens(indices)}

    def micro_step(self, scorer, indices, totals, world):
        ex = [self.s.dataset[i] for i in indices]
        logps, counts = scorer([e.context for e in ex], [e.chosen for e in ex])
        logps = logps.float()
        return sft_loss(logps, torch.as_tensor(totals["tokens"])) * world, {"logps": logps, "tokens": counts.float()}

    def metrics(self, g, indices, totals):
        loss = sft_loss(g["logps"], torch.as_tensor(totals["tokens"])).item()
        return {"loss": loss, "logps/target": g["logps"].mean().item()}


def train_sft(cfg: TrainConfig, *, resume: bool = False, on_step=None) -> dict:
    """Run SFT for ``cfg``; return {'step', 'stopped', 'final'}."""
    s = setup(cfg, resume=resume)
    held_out = SFTObjective(dataclasses.replace(s, dataset=s.eval_dataset)) if s.eval_dataset is not None else None
    return loop.run(s, SFTObjective(s), resume=resume, on_step=on_step, eval_objective=held_out)
