"""Packed shared-prefix rows (several pairs per row, no padding) give the unpacked log-probs and gradients.

Compared against: each family's naive path (every answer scored on its own copy of the context, one pair per
row, as the family's tokenizer or processor writes it), in fp32 to 1e-5. The naive path is itself checked
against the reference implementation (Flamingo) and the processors' own inputs (HF families).
"""

from __future__ import annotations

import pytest
import torch
from pair_fixtures import EOC, assert_same_pairs, ctx, mpt_lmm, pair_grads

from symdpo.models.packing import TreeRows, pack_tree, plan_rows
from symdpo.models.scoring import pad_right, tree_mask


def test_rows_are_filled_in_order_up_to_the_budget():
    assert plan_rows([5, 5, 5, 12, 3], 10) == [[0, 1], [2], [3], [4]]  # a pair over budget gets a row of its own
    assert plan_rows([3, 3, 3], 100) == [[0, 1, 2]]


def test_packed_rows_hold_no_padding_and_block_diagonal_trees():
    """Two pairs in one row: each sees only its own tree; the rejected answer restarts the chosen positions."""
    ctx_ids, ctx_mask = pad_right([[1, 2, 3], [4, 5]], 0)
    ctx_ids, ctx_mask = ctx_ids.flip(1), ctx_mask.flip(1)  # left-padded contexts, as the families build them
    ch_ids, ch_mask = pad_right([[6], [7, 8]], 0)
    rj_ids, rj_mask = pad_right([[9, 10], [11]], 0)
    start = ctx_mask.sum(1, keepdim=True)
    positions = torch.cat([(ctx_mask.cumsum(1) - 1).clamp(min=0), start + torch.arange(2), start + torch.arange(2)], 1)
    tree = TreeRows(torch.cat([ctx_ids, ch_ids, rj_ids], 1), tree_mask(ctx_mask, ch_mask, rj_mask), positions,
                    ctx_mask, ch_ids, ch_mask, rj_ids, rj_mask)
    packed = pack_tree(tree, 100, pad_id=0)
    assert packed.input_ids.tolist() == [[3, 2, 1, 6, 9, 10, 5, 4, 7, 8, 11]]
    assert packed.positions.tolist() == [[0, 1, 2, 3, 3, 4, 0, 1, 2, 3, 2]]
    v = packed.visible[0]
    assert not v[6:, :6].any() and not v[:6, 6:].any()  # no pair sees another
    assert v[4, :3].all() and not v[4, 3]  # the rejected answer sees the context, not the chosen one
    # chosen [6] is predicted by the context's last token (col 2); rejected [9, 10] by cols 2 and 4
    cols = packed.keep[packed.target_col].tolist()
    assert list(zip(cols, packed.target_ids.tolist(), strict=True)) == [(2, 6), (2, 9), (4, 10), (7, 7), (8, 8), (7, 11)]


@pytest.fixture
def rows_used(monkeypatch):
    """Return the list that records each packing's rows (pairs per row), to check the budget did pack."""
    import symdpo.models.packing as packing

    seen = []
    real = packing.plan_rows
    monkeypatch.setattr(packing, "plan_rows", lambda lengths, budget: seen.append(real(lengths, budget)) or seen[-1])
    return seen


def _tree_lengths(model, contexts, chosen, rejected) -> list[int]:
    """Return each pair's tokens once packed: its context, then both answers."""
    return [len(model.tokenize([c]).input_ids[0]) + sum(model.answer_token_counts([a, b]))
            for c, a, b in zip(contexts, chosen, rejected, strict=True)]


@pytest.mark.parametrize("family", ["llama", "mpt"])
def test_flamingo_packed_equals_unpacked(lmm, images, family, rows_used):
    """Flamingo on a rotary LM and on MPT (ALiBi): packed rows (a budget that puts 2-3 pairs per row) equal naive
    scoring. A context opens with text before its first image, whose tokens must not see the previous pair's
    image in the row (OpenFlamingo: text before any image attends to none)."""
    from symdpo.models.flamingo.training import set_openflamingo_trainable

    model = lmm if family == "llama" else mpt_lmm()
    set_openflamingo_trainable(model.model)
    model.model.train()
    contexts = [ctx(images, shots=1), ["Answer briefly. "] + ctx(images[2:], shots=2), ctx(images, shots=3, q="is it blue?"),
                ["Look: "] + ctx(images[1:], shots=1)]
    chosen = ["red" + EOC, "circle" + EOC, "a b c d" + EOC, "no" + EOC]
    rejected = ["zorblat" + EOC, "blue" + EOC, "x" + EOC, "yes it is" + EOC]
    params = [p for p in model.model.parameters() if p.requires_grad]
    lengths = _tree_lengths(model, contexts, chosen, rejected)
    budget = sum(lengths[:2]) + 2  # the first two pairs share a row; more than one row
    naive = pair_grads(model, params, contexts, chosen, rejected, shared_prefix=False)
    packed = pair_grads(model, params, contexts, chosen, rejected, max_tokens_per_row=budget)
    assert_same_pairs(packed, naive)
    assert rows_used[-1][0] == [0, 1] and len(rows_used[-1]) > 1
    one_row = pair_grads(model, params, contexts, chosen, rejected, max_tokens_per_row=10_000)
    assert_same_pairs(one_row, naive)
    assert rows_used[-1] == [[0, 1, 2, 3]]


@pytest.mark.parametrize("name,style", [("tiny-qwen2-vl", "openflamingo"), ("tiny-idefics3", "openflamingo"),
                                        ("tiny-gemma3", "openflamingo"), ("tiny-smolvlm", "native"),
                                        ("tiny-qwen2-vl", "native"), ("tiny-llava-onevision", "native")])
def test_hf_packed_equals_unpacked(name, style, rows_used):
    """HF families (M-RoPE and flat patches; nested images with pixel masks; Gemma 3's two masks): packed rows
    equal naive scoring, values and gradients, with a budget that puts two pairs in a row and needs two rows; in
    OpenFlamingo's wording and in the family's own format (SmolVLM's cue space moved to the answers)."""
    from hf_fixtures import native_context, vqa_context

    from symdpo.models.interface import TrainingSpec
    from symdpo.models.registry import load_model

    lmm = load_model(name)
    lmm.prepare_training(TrainingSpec(policy="full"))
    lmm.train(False)
    end = lmm.end_of_chunk
    make = vqa_context if style == "openflamingo" else (lambda seed=1, shots=1: native_context(lmm, seed, shots))
    contexts = [make(shots=1), make(seed=4, shots=2), make(seed=7, shots=3)]
    chosen = ["circle" + end, "rhondda a b", "x" + end]
    rejected = ["red", "odwyer" + end, "blue green yellow" + end]
    params = [p for p in lmm.module.parameters() if p.requires_grad]
    lengths = _tree_lengths(lmm, contexts, chosen, rejected)
    naive = pair_grads(lmm, params, contexts, chosen, rejected, shared_prefix=False)
    packed = pair_grads(lmm, params, contexts, chosen, rejected, max_tokens_per_row=sum(lengths[:2]) + 2)
    assert_same_pairs(packed, naive)
    assert rows_used == [[[0, 1], [2]]]


def test_a_family_that_cannot_pack_says_so():
    from symdpo.models.registry import load_model

    lmm = load_model("tiny-idefics")
    with pytest.raises(ValueError, match="packing .data.max_tokens_per_batch. is not available"):
        lmm.pair_logps([["hi"]], ["a"], ["b"], max_tokens_per_row=512)
