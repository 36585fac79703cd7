"""Packing of shared-prefix preference rows: several (context + chosen + rejected) trees per row, no padding.

A shared-prefix batch (`scoring.tree_mask`) has one pair per row, left-padded to the longest context and
right-padded to the longest answers. Packing drops every padding column and lays the pairs' trees one after
the other in rows of at most ``max_tokens`` tokens, under a block-diagonal visibility (each pair sees only
itself, with its own tree inside) and per-pair positions (every pair starts at its own position 0). Logits
are asked for only at the columns that predict an answer token; each answer's log-prob is gathered from them.
Values and gradients equal those of the unpacked rows (tests/train/test_packing.py); families add only
what their model needs besides ids, mask and positions (Flamingo: which image each token attends to; HF
families: their images' tensors, concatenated in the row's order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from symdpo.models import scoring


@dataclass
class TreeRows:
    """B shared-prefix rows, laid out context (left-padded) + chosen + rejected (right-padded)."""

    input_ids: torch.Tensor  # (B, T)
    visible: torch.Tensor  # (B, T, T) bool, scoring.tree_mask
    positions: torch.Tensor  # (B, T), or (3, B, T) for M-RoPE
    ctx_mask: torch.Tensor  # (B, C) bool: real context tokens (at the right end of the context columns)
    ch_ids: torch.Tensor  # (B, A) chosen ids, right-padded
    ch_mask: torch.Tensor  # (B, A) bool
    rj_ids: torch.Tensor  # (B, A') rejected ids, right-padded
    rj_mask: torch.Tensor  # (B, A') bool

    @classmethod
    def build(cls, ctx_ids, ctx_mask, ch_ids, ch_mask, rj_ids, rj_mask, positions) -> TreeRows:
        """Return the rows context + chosen + rejected of left-padded contexts and right-padded answers."""
        return cls(torch.cat([ctx_ids, ch_ids, rj_ids], 1), scoring.tree_mask(ctx_mask, ch_mask, rj_mask), positions,
                   ctx_mask.bool(), ch_ids, ch_mask, rj_ids, rj_mask)


@dataclass
class Packed:
    """Pairs packed into R rows of L columns, and where each answer token's predicting logit is."""

    input_ids: torch.Tensor  # (R, L), right-padded with the pad id
    visible: torch.Tensor  # (R, L, L) bool, block-diagonal over the pairs of a row
    positions: torch.Tensor  # (R, L) or (3, R, L); 0 on padding
    rows: list[list[int]]  # the pairs of each row, in order
    spans: list[tuple[int, int, int]]  # per pair: (row, first column, length)
    ctx_lengths: list[int]  # per pair: real context tokens (they come first in its span)
    keep: torch.Tensor  # (K,) the columns whose logits are needed (any row)
    target_row: torch.Tensor  # (N,) per scored answer token: its row,
    target_col: torch.Tensor  # (N,) the index into ``keep`` of the column predicting it,
    target_ids: torch.Tensor  # (N,) its id,
    target_pair: torch.Tensor  # (N,) its pair,
    target_chosen: torch.Tensor  # (N,) bool: a chosen-answer token (else rejected)
    pairs: int


def plan_rows(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Return the pair indices of each row: pairs in order, a new row when the next would pass ``max_tokens``.

    A pair longer than ``max_tokens`` gets a row of its own (it is never split).
    """
    rows: list[list[int]] = []
    used = 0
    for i, n in enumerate(lengths):
        if rows and used + n <= max_tokens:
            rows[-1].append(i)
            used += n
        else:
            rows.append([i])
            used = n
    return rows


def pack_tree(tree: TreeRows, max_tokens: int, pad_id: int) -> Packed:
    """Return ``tree``'s pairs packed into rows of at most ``max_tokens`` tokens (padding columns dropped)."""
    keep_cols = torch.cat([tree.ctx_mask, tree.ch_mask, tree.rj_mask], 1).bool()
    lengths = keep_cols.sum(1).tolist()
    ctx_len = tree.ctx_mask.sum(1).tolist()
    ch_len, rj_len = tree.ch_mask.sum(1).tolist(), tree.rj_mask.sum(1).tolist()
    rows = plan_rows(lengths, max_tokens)
    width = max(sum(lengths[i] for i in row) for row in rows)
    mrope = tree.positions.dim() == 3
    ids = torch.full((len(rows), width), pad_id, dtype=tree.input_ids.dtype)
    visible = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)  # a padding query sees itself
    positions = torch.zeros((3, len(rows), width) if mrope else (len(rows), width), dtype=tree.positions.dtype)
    spans: list[tuple[int, int, int]] = [(0, 0, 0)] * len(lengths)
    t_row, t_col, t_ids, t_pair, t_chosen = [], [], [], [], []
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            cols = keep_cols[i].nonzero().squeeze(1)
            n = len(cols)
            ids[r, start:start + n] = tree.input_ids[i, cols]
            visible[r, start:start + n, start:start + n] = tree.visible[i][cols][:, cols]
            if mrope:
                positions[:, r, start:start + n] = tree.positions[:, i, cols]
            else:
                positions[r, start:start + n] = tree.positions[i, cols]
            spans[i] = (r, start, n)
            last_ctx = start + ctx_len[i] - 1
            # answer token j is predicted by the column before it in its own branch; the first by the context's last
            for chosen, count, first in ((True, ch_len[i], start + ctx_len[i]),
                                         (False, rj_len[i], start + ctx_len[i] + ch_len[i])):
                answer = (tree.ch_ids if chosen else tree.rj_ids)[i, :count]
                t_row += [r] * count
                t_col += [last_ctx] + list(range(first, first + count - 1))
                t_ids.append(answer)
                t_pair += [i] * count
                t_chosen += [chosen] * count
            start += n
    keep, index = torch.unique(torch.tensor(t_col), sorted=True, return_inverse=True)
    return Packed(ids, visible, positions, rows, spans, ctx_len, keep, torch.tensor(t_row), index,
                  torch.cat(t_ids), torch.tensor(t_pair), torch.tensor(t_chosen), len(lengths))


def packed_logps(logits: torch.Tensor, packed: Packed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (chosen, rejected) summed log-probs (P,) each and their token counts from (R, K, V) kept logits.

    ``logits[:, k]`` are the logits at column ``packed.keep[k]``; only the scored tokens' rows go through the
    log-softmax, in fp32.
    """
    dev = logits.device
    picked = logits[packed.target_row.to(dev), packed.target_col.to(dev)].float()
    logps = torch.log_softmax(picked, -1).gather(-1, packed.target_ids.to(dev)[:, None]).squeeze(-1)
    pair, chosen = packed.target_pair.to(dev), packed.target_chosen.to(dev)
    sums = []
    for side in (chosen, ~chosen):
        sums.append(torch.zeros(packed.pairs, device=dev, dtype=logps.dtype).index_add(0, pair[side], logps[side]))
        sums.append(torch.bincount(pair[side], minlength=packed.pairs))
    c_sum, c_n, r_sum, r_n = sums
    return c_sum, r_sum, c_n, r_n


def kept_logits(logits: torch.Tensor, packed: Packed) -> torch.Tensor:
    """Return the (R, K, V) logits at ``packed.keep`` from an LM output that has either those or every column."""
    if logits.shape[1] == len(packed.keep):
        return logits
    return logits[:, packed.keep.to(logits.device)]
