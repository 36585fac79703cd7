"""Preference losses, SFT term and metrics, compared with TRL's DPOTrainer (trl 1.x).

TRL 1.x has no standalone `dpo_loss`: the loss lives inside `DPOTrainer._compute_loss`, which runs the model with
`fused_lm_head=True` and reads per-token log-probs from `outputs.log_probs`. We call that method on a bare
`object.__new__(DPOTrainer)` whose attributes are those it reads, with a fake model returning fixed per-token
log-probs and precomputed reference log-probs, then compare the returned loss and the metrics it logs.
"""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import trl  # a test dependency (pyproject [test]): missing, it fails the suite instead of skipping

from symdpo.train.losses import dpo_metrics, preference_loss, sft_loss


class _FakeModel:
    """Stands in for the policy: returns fixed per-token log-probs as TRL's fused-LM-head output."""

    training = True

    def __init__(self, token_logps: torch.Tensor):
        self.token_logps = token_logps

    def __call__(self, **kwargs):
        n = self.token_logps
        return SimpleNamespace(log_probs=n, entropy=torch.zeros_like(n), mean_logits=torch.zeros_like(n),
                               is_top1=torch.zeros_like(n, dtype=torch.bool))


def _trl(loss_type, token_logps, completion_mask, ref_chosen, ref_rejected, beta, label_smoothing=0.0):
    """Return (loss, logged metrics) from TRL's DPOTrainer._compute_loss for [chosen; rejected] rows."""
    trainer = object.__new__(trl.DPOTrainer)
    identity = lambda t: t  # noqa: E731  (one process: gathering is the identity)
    trainer.__dict__.update(
        model=_FakeModel(token_logps), ref_model=None, beta=beta, label_smoothing=label_smoothing,
        loss_types=[loss_type], loss_weights=[1.0], f_divergence_type="reverse_kl", ld_alpha=None,
        precompute_ref_logps=True, use_weighting=False, aux_loss_enabled=False, _tp_size=1,
        _total_train_tokens=0, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        accelerator=SimpleNamespace(device="cpu", gather=identity, gather_for_metrics=identity),
    )
    inputs = {"input_ids": torch.zeros_like(completion_mask), "attention_mask": torch.ones_like(completion_mask),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    loss = trainer._compute_loss(trainer.model, inputs, return_outputs=False)
    return loss, {k: v[-1] for k, v in trainer._metrics["train"].items()}


def _batch(n_pairs=6, length=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    # completion_mask over the full sequence: prompt first (column 0 always prompt), then 1..length-1 answer tokens
    lengths = torch.randint(1, length, (2 * n_pairs,), generator=g)
    completion_mask = (torch.arange(length) >= length - lengths[:, None]).long()
    # per-token log-probs at the shifted positions, 0 where the label is masked (-100), as TRL's fused LM head gives
    token_logps = -torch.rand(2 * n_pairs, length - 1, generator=g, dtype=torch.float64) * 3 * completion_mask[:, 1:]
    summed = token_logps.sum(1)
    ref = summed + torch.randn(2 * n_pairs, generator=g, dtype=torch.float64)
    return token_logps, completion_mask, summed, ref, lengths


@pytest.mark.parametrize("loss_type, label_smoothing", [("sigmoid", 0.0), ("hinge", 0.0), ("ipo", 0.0),
                                                        ("robust", 0.1), ("robust", 0.3)])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_losses_equal_trl(loss_type, label_smoothing, beta):
    token_logps, completion_mask, summed, ref, lengths = _batch()
    n = len(summed) // 2
    want, _ = _trl(loss_type, token_logps, completion_mask, ref[:n], ref[n:], beta, label_smoothing)
    # IPO takes per-token mean log-probs (TRL divides the log-ratios by completion length; so does the DPO repo)
    scale = lengths.double() if loss_type == "ipo" else torch.ones_like(summed)
    pol, rf = summed / scale, ref / scale
    losses, _, _ = preference_loss(pol[:n], pol[n:], rf[:n], rf[n:], beta=beta, loss_type=loss_type,
                                   label_smoothing=label_smoothing)
    assert abs(losses.mean().item() - want.item()) < 1e-6


def test_sft_loss_equals_trl_sft():
    token_logps, completion_mask, summed, ref, lengths = _batch(seed=1)
    n = len(summed) // 2
    want, _ = _trl("sft", token_logps, completion_mask, ref[:n], ref[n:], beta=0.1)
    assert abs(sft_loss(summed[:n], lengths[:n]).item() - want.item()) < 1e-6


def test_metrics_equal_trl_and_group_breakdown():
    token_logps, completion_mask, summed, ref, _ = _batch(seed=2)
    n = len(summed) // 2
    _, logged = _trl("sigmoid", token_logps, completion_mask, ref[:n], ref[n:], beta=0.1)
    _, chosen_r, rejected_r = preference_loss(summed[:n], summed[n:], ref[:n], ref[n:], beta=0.1)
    groups = ["text", "wrong_symbol", "text", "text", "wrong_symbol", "text"]
    ours = dpo_metrics(chosen_r, rejected_r, summed[:n], summed[n:], groups=groups)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                "logps/rejected"):
        assert abs(ours[key] - logged[key]) < 1e-6, key
    text = torch.tensor([g == "text" for g in groups])
    assert ours["rewards/accuracies/text"] == (chosen_r > rejected_r)[text].float().mean().item()
    assert ours["rewards/margins/wrong_symbol"] == pytest.approx((chosen_r - rejected_r)[~text].mean().item())


def test_rewards_are_detached_and_losses_differentiable():
    pol_c, pol_r = torch.tensor([-3.0, -1.0], requires_grad=True), torch.tensor([-2.0, -4.0], requires_grad=True)
    losses, chosen_r, rejected_r = preference_loss(pol_c, pol_r, torch.tensor([-2.5, -1.5]),
                                                   torch.tensor([-2.0, -2.0]), beta=0.2)
    assert not chosen_r.requires_grad and not rejected_r.requires_grad
    losses.sum().backward()
    assert (pol_c.grad < 0).all() and (pol_r.grad > 0).all()  # raise chosen, lower rejected


def test_unknown_loss_type_raises():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="kto"):
        preference_loss(x, x, x, x, loss_type="kto")
