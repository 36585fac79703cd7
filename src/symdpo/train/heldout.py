"""The objective's metrics on the held-out records, scored every ``logging.eval_every_steps`` during training."""

from __future__ import annotations

import torch
from torch import nn

from symdpo.train.objective import Objective
from symdpo.train.setup import Setup


def evaluate(s: Setup, objective: Objective, scorer: nn.Module) -> dict[str, float]:
    """Return the objective's metrics on the held-out records (no gradients, dropout off), keys prefixed eval/."""
    from accelerate.utils import gather_object

    acc, ds = s.accelerator, s.eval_dataset
    indices = list(range(len(ds)))
    totals = objective.denominators(indices)
    mine = indices[acc.process_index::acc.num_processes]
    parts: list[tuple[list[int], dict[str, list[float]]]] = []
    was_training = s.lmm.module.training
    s.lmm.train(False)
    with torch.no_grad():
        for b in range(0, len(mine), s.cfg.data.micro_batch_size):
            mb = mine[b:b + s.cfg.data.micro_batch_size]
            _, local = objective.micro_step(scorer, mb, totals, acc.num_processes)
            parts.append((mb, {k: v.detach().float().cpu().tolist() for k, v in local.items()}))
    s.lmm.train(was_training)
    gathered = [p for share in gather_object([parts]) for p in share]  # every process's micro-batches
    order = [i for mb, _ in gathered for i in mb]
    rank = sorted(range(len(order)), key=order.__getitem__)
    cat = {k: torch.tensor([x for _, local in gathered for x in local[k]])[rank] for k in gathered[0][1]}
    return {f"eval/{k}": v for k, v in objective.metrics(cat, sorted(order), totals).items()}
