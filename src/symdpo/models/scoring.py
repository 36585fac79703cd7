"""Masked log-prob helpers shared by every family: answer tokens only, never the context or padding."""

from __future__ import annotations

import torch


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (B,) summed log-probs of the tokens where ``answer_mask`` is True and (B,) their counts.

    Token t is predicted by the logits at t-1, so the mask is shifted with the labels.
    """
    return masked_logps(logits[:, :-1], input_ids[:, 1:], answer_mask[:, 1:])


def answer_suffix(answer_mask: torch.Tensor) -> int:
    """Return how many last columns of a left-padded batch hold every answer token and the token before each.

    Answers are appended after the context, so the logits of those columns are the only ones scoring needs.
    """
    return int(answer_mask.sum(1).max()) + 1


def masked_logps(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (B,) summed log-probs of ``labels`` where ``mask`` is True, and (B,) their counts.

    ``logits[:, t]`` predicts ``labels[:, t]``. The log-softmax runs over the masked positions only: the
    context positions never need a full-vocabulary softmax.
    """
    logps = torch.log_softmax(logits[mask].float(), dim=-1).gather(-1, labels[mask][:, None]).squeeze(-1)
    rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
    summed = torch.zeros(mask.shape[0], device=logits.device, dtype=logps.dtype).index_add(0, rows, logps)
    return summed, mask.sum(-1)


def right_padded(tokenizer, answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (B, A) token ids of the answers (each tokenized alone), right-padded, and their (B, A) bool mask."""
    ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    for i, a in enumerate(ids):
        if not a:
            raise ValueError(f"answer {i} ({answers[i]!r}) tokenizes to nothing")
    return pad_right(ids, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)


def pad_right(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (B, A) token ``rows`` right-padded with ``pad``, and their (B, A) bool mask of real tokens."""
    width = max(len(r) for r in rows)
    padded = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows])
    return padded, mask


def compute_dtype(module: torch.nn.Module, device: torch.device) -> torch.dtype:
    """Return the dtype ``module`` computes in on ``device``: autocast's when it is on, else its weights'."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return next(module.parameters()).dtype


def additive_mask(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Return the (B, 1, T, T) additive float mask of a (B, T, T) bool visibility (a 4-D mask every LM takes)."""
    return torch.zeros(visible.shape, dtype=dtype).masked_fill_(~visible, torch.finfo(dtype).min)[:, None]


def tree_mask(context_mask: torch.Tensor, chosen_mask: torch.Tensor, rejected_mask: torch.Tensor) -> torch.Tensor:
    """Return the (B, T, T) bool visibility of rows laid out context + chosen + rejected (True: may attend).

    Causal, except that an answer never sees the other answer; padding keys are never seen; a padding query
    sees itself (its output is unused), so no attention row is empty.
    """
    n_ctx, n_ch, n_rj = context_mask.shape[1], chosen_mask.shape[1], rejected_mask.shape[1]
    branch = torch.tensor([0] * n_ctx + [1] * n_ch + [2] * n_rj)  # 0 context, 1 chosen, 2 rejected
    total = len(branch)
    visible = torch.ones(total, total, dtype=torch.bool).tril()
    visible &= (branch[None, :] == 0) | (branch[:, None] == branch[None, :])
    keys = torch.cat([context_mask.bool(), chosen_mask.bool(), rejected_mask.bool()], 1)
    visible = visible[None] & keys[:, None, :]
    return visible | torch.eye(total, dtype=torch.bool)
