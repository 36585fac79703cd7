"""DPO-family preference losses, the SFT term and DPO metrics: pure functions of summed answer log-probs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch.nn import functional as F

# Each loss maps h = log π(y_w|x)/π_ref(y_w|x) − log π(y_l|x)/π_ref(y_l|x), β and label smoothing ε to per-pair losses.
LOSSES: dict[str, Callable[[torch.Tensor, float, float], torch.Tensor]] = {
    # DPO (Rafailov et al. 2023, arXiv 2305.18290, Eq. 7): −log σ(β h). With ε > 0 this is conservative DPO
    # (Mitchell 2023, "A note on DPO with noisy preferences"): labels flipped with probability ε.
    "sigmoid": lambda h, beta, eps: -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h),
    # IPO (Azar et al. 2023, arXiv 2310.12036, Eq. 17, τ = β): (h − 1/(2β))². Pass per-token *mean* log-probs,
    # as the DPO repo (average_log_prob for ipo) and TRL (division by completion length) do.
    "ipo": lambda h, beta, eps: (h - 1 / (2 * beta)) ** 2,
    # SLiC-HF calibration loss max(0, δ − log P(y_w|x) + log P(y_l|x)) (Zhao et al. 2023, arXiv 2305.10425)
    # on reference-normalised likelihoods as in RSO (Liu et al. 2023, arXiv 2309.06657): max(0, 1 − β h), δ = 1/β.
    "hinge": lambda h, beta, eps: torch.relu(1 - beta * h),
    # rDPO (Chowdhury et al. 2024, arXiv 2403.00409): [(1−ε) ℓ(h) − ε ℓ(−h)] / (1 − 2ε), ℓ = −log σ(β ·),
    # an unbiased estimate of the clean DPO loss when labels flip with probability ε < 1/2.
    "robust": lambda h, beta, eps: (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h))
    / (1 - 2 * eps),
}


def preference_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return per-pair (losses, chosen_rewards, rejected_rewards); rewards are the detached β log π/π_ref."""
    if loss_type not in LOSSES:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {sorted(LOSSES)}")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    losses = LOSSES[loss_type](chosen_logratios - rejected_logratios, beta, label_smoothing)
    # implicit reward r(x, y) = β log π(y|x)/π_ref(y|x) (DPO paper, Sec. 5); logged, never differentiated
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def sft_loss(chosen_logps: torch.Tensor, chosen_tokens: torch.Tensor) -> torch.Tensor:
    """Return the mean negative log-likelihood per answer token, from per-sequence summed log-probs and counts."""
    # token-weighted, as a cross-entropy over all answer tokens of the batch: long answers weigh more
    return -chosen_logps.sum() / chosen_tokens.sum().clamp(min=1)


class SymDPOLoss(NamedTuple):
    loss: torch.Tensor  # the scalar to differentiate
    losses: torch.Tensor  # per-pair preference losses
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def symdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_tokens: torch.Tensor,
    rejected_tokens: torch.Tensor,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    sft_weight: float = 1.0,
    pairs: float | None = None,
    answer_tokens: float | torch.Tensor | None = None,
) -> SymDPOLoss:
    """Return the SymDPO objective: Σ preference losses / ``pairs`` + ``sft_weight`` × NLL per chosen answer token.

    Log-probs are per-answer sums, ``*_tokens`` their token counts. IPO compares per-token mean log-probs (the DPO
    repo's average_log_prob, TRL's division by completion length). ``pairs`` and ``answer_tokens`` are the
    normalisers: this batch's by default, the whole optimiser step's when gradients accumulate over micro-batches.
    """
    pc, pr, rc, rr = policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    if loss_type == "ipo":
        pc, pr, rc, rr = pc / chosen_tokens, pr / rejected_tokens, rc / chosen_tokens, rr / rejected_tokens
    losses, chosen_rewards, rejected_rewards = preference_loss(pc, pr, rc, rr, beta=beta, loss_type=loss_type,
                                                               label_smoothing=label_smoothing)
    loss = losses.sum() / (len(losses) if pairs is None else pairs)
    if sft_weight:  # a token-weighted cross-entropy over all chosen answers: long answers weigh more
        tokens = chosen_tokens.sum() if answer_tokens is None else answer_tokens
        loss = loss + sft_weight * sft_loss(policy_chosen_logps, torch.as_tensor(tokens))
    return SymDPOLoss(loss, losses, chosen_rewards, rejected_rewards)


def dpo_metrics(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    groups: Sequence[str] | None = None,
) -> dict[str, float]:
    """Return TRL-named batch means (rewards/*, logps/*), plus rewards/{accuracies,margins}/<group> per group."""
    correct, margins = (chosen_rewards > rejected_rewards).float(), chosen_rewards - rejected_rewards
    metrics = {
        "rewards/chosen": chosen_rewards.mean().item(),
        "rewards/rejected": rejected_rewards.mean().item(),
        "rewards/accuracies": correct.mean().item(),
        "rewards/margins": margins.mean().item(),
        "logps/chosen": policy_chosen_logps.detach().mean().item(),
        "logps/rejected": policy_rejected_logps.detach().mean().item(),
    }
    for group in sorted(set(groups or ())):  # e.g. the rejected type of SymDPO pairs: text, wrong_symbol
        mask = torch.tensor([g == group for g in groups], device=correct.device)
        metrics[f"rewards/accuracies/{group}"] = correct[mask].mean().item()
        metrics[f"rewards/margins/{group}"] = margins[mask].mean().item()
    return metrics
