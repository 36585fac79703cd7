"""`symdpo train dpo`: SymDPO (sigmoid DPO + an SFT term on the chosen answer) on preference records.

setup → reference (precomputed beside the data, or a live frozen copy) → train → save → cleanup.
"""

from __future__ import annotations

import dataclasses

import torch

from symdpo.config import ConfigError
from symdpo.train import loop, sharding
from symdpo.train.config import TrainConfig
from symdpo.train.losses import dpo_metrics, sft_loss, symdpo_loss
from symdpo.train.reference import fingerprint, precompute, reference_path
from symdpo.train.setup import Setup, setup


class AnswerTokens:
    """The loss normaliser: how many tokens each record's chosen answer scores, read after its context (the count
    scoring will give, known before a step's first forward); counted once per record."""

    def __init__(self, lmm, dataset):
        self.lmm, self.dataset, self.counts = lmm, dataset, {}

    def __call__(self, indices: list[int]) -> int:
        """Return the answer tokens of records ``indices`` together."""
        new = [i for i in dict.fromkeys(indices) if i not in self.counts]
        if new:
            texts = [self.dataset.scored_text(i) for i in new]
            counts = self.lmm.answer_token_counts([a for _, a in texts], [[t] for t, _ in texts])
            self.counts.update(zip(new, counts, strict=True))
        return sum(self.counts[i] for i in indices)


class DPOObjective:
    """Per-micro-batch DPO loss with global normalisation, and the step's TRL-named metrics."""

    plot_keys = ["loss", "rewards/accuracies", "rewards/accuracies/wrong_symbol", "rewards/margins", "rewards/chosen",
                 "rewards/rejected", "lr"]

    def __init__(self, cfg: TrainConfig, s: Setup, *, ref_logps=None, ref_lmm=None):
        self.cfg, self.s, self.d = cfg, s, cfg.dpo
        self.ref_logps, self.ref_lmm = ref_logps, ref_lmm
        self.answer_tokens = AnswerTokens(s.lmm, s.dataset)

    def denominators(self, indices: list[int]) -> dict[str, float]:
        return {"pairs": len(indices), "tokens": self.answer_tokens(indices)}

    def reference(self, indices: list[int], examples) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the reference (chosen, rejected) log-probs of a micro-batch."""
        dev = self.s.accelerator.device
        if self.ref_logps is not None:
            c, r = self.ref_logps
            return c[indices].to(dev), r[indices].to(dev)
        with torch.no_grad(), self.s.accelerator.autocast():
            c, r, _, _ = self.ref_lmm.pair_logps([e.context for e in examples], [e.chosen for e in examples],
                                                 [e.rejected for e in examples], shared_prefix=self.d.shared_prefix,
                                                 max_tokens_per_row=self.cfg.data.max_tokens_per_batch)
        return c.float(), r.float()

    def micro_step(self, scorer, indices, totals, world):
        ex = [self.s.dataset[i] for i in indices]
        pc, pr, nc, nr = scorer([e.context for e in ex], [e.chosen for e in ex], [e.rejected for e in ex])
        pc, pr = pc.float(), pr.float()
        rc, rr = self.reference(indices, ex)
        # normalised by the optimiser step's pair and token counts; x world undoes the data-parallel mean
        out = symdpo_loss(pc, pr, rc, rr, nc, nr, beta=self.d.beta, loss_type=self.d.loss_type,
                          label_smoothing=self.d.label_smoothing, sft_weight=self.d.sft_weight,
                          pairs=totals["pairs"], answer_tokens=totals["tokens"])
        loss, losses, cr, rj = out.loss * world, out.losses, out.chosen_rewards, out.rejected_rewards
        local = {"losses": losses, "chosen_rewards": cr, "rejected_rewards": rj, "policy_chosen": pc,
                 "policy_rejected": pr}
        return loss, local

    def metrics(self, g, indices, totals):
        groups = [self.s.dataset.group(i) for i in indices]
        groups = None if None in groups else groups  # TRL-layout data from elsewhere has no rejected types
        m = dpo_metrics(g["chosen_rewards"], g["rejected_rewards"], g["policy_chosen"], g["policy_rejected"], groups)
        m["loss/dpo"] = g["losses"].mean().item()
        m["loss/sft"] = sft_loss(g["policy_chosen"], torch.as_tensor(totals["tokens"])).item()
        m["loss"] = m["loss/dpo"] + self.d.sft_weight * m["loss/sft"]
        return m


def prepare_reference(cfg: TrainConfig, s: Setup) -> dict:
    """Return the objective's reference: {'ref_logps': (chosen, rejected)} or {'ref_lmm': frozen copy}."""
    if cfg.dpo.reference == "live":
        if not sharding.has_weights(s.lmm.module):  # FSDP's RAM-efficient loading: no weights to copy
            raise ConfigError("dpo.reference=live: with fsdp_cpu_ram_efficient_loading only the main process has "
                              "weights before sharding; use dpo.reference=precomputed (the default)")
        if sharding.is_zero3(s.accelerator):  # a live copy would run on weights ZeRO-3 partitions away
            raise ConfigError("dpo.reference=live: DeepSpeed ZeRO-3 partitions the weights the live reference "
                              "shares; use dpo.reference=precomputed (the default) or ZeRO-2 / FSDP")
        return {"ref_lmm": s.lmm.reference_copy(share_frozen=cfg.dpo.share_frozen)}
    fp = fingerprint(s.dataset, model=cfg.model.name, dtype=cfg.model.dtype, precision=cfg.precision,
                     lora=cfg.lora.enabled, policy=cfg.model.policy)
    path = reference_path(s.dataset, fp)
    logps = precompute(s.accelerator, s.lmm, s.dataset, path, batch_size=cfg.dpo.reference_batch_size,
                       shared_prefix=cfg.dpo.shared_prefix, max_tokens_per_row=cfg.data.max_tokens_per_batch)
    return {"ref_logps": logps}


def train_dpo(cfg: TrainConfig, *, resume: bool = False, on_step=None) -> dict:
    """Run DPO training for ``cfg``; return {'step', 'stopped', 'final'}."""
    s = setup(cfg, resume=resume)
    if not s.dataset.is_preference():
        raise ValueError(f"{cfg.data.path}: DPO needs preference records (chosen/rejected), got SFT records")
    ref = prepare_reference(cfg, s)
    objective = DPOObjective(cfg, s, **ref)
    held_out = None
    if s.eval_dataset is not None:  # the same objective on the held-out records, with their own reference
        es = dataclasses.replace(s, dataset=s.eval_dataset)
        held_out = DPOObjective(cfg, es, **(ref if "ref_lmm" in ref else prepare_reference(cfg, es)))
    return loop.run(s, objective, resume=resume, on_step=on_step, eval_objective=held_out)
