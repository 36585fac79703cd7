"""Shared-context pair log-probs of every HF family equal naive scoring: values and gradients, fp32, 1e-5, in
OpenFlamingo's wording and in the family's own format (a chat cue's space moved to the answers).

Compared against: the naive path, where each answer is scored on its own copy of the context exactly as the
family's processor writes context + answer (tests/models/hf/test_hf_scoring.py checks that path against the
processor's own inputs and a direct forward of the transformers model).
"""

from __future__ import annotations

import pytest
import torch
from hf_fixtures import FAMILY_PRESETS, VARIANT_PRESETS, native_context, vqa_context
from pair_fixtures import assert_same_pairs

from symdpo.models.interface import TrainingSpec
from symdpo.models.registry import load_model


def _pairs(end: str, lmm=None):
    """Return (contexts, chosen, rejected): OpenFlamingo-worded contexts, or ``lmm``'s own format when given."""
    make = vqa_context if lmm is None else (lambda seed=1, shots=1: native_context(lmm, seed, shots))
    contexts = [make(shots=1), make(seed=4, shots=2), make(seed=7, shots=3)]
    chosen = ["circle" + end, "rhondda a b", "x" + end]
    rejected = ["red", "odwyer" + end, "blue green yellow" + end]
    return contexts, chosen, rejected


def _run(lmm, shared: bool, contexts, chosen, rejected):
    params = [p for p in lmm.module.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    c, r, nc, nr = lmm.pair_logps(contexts, chosen, rejected, shared_prefix=shared)
    (c.sum() - 2 * r.sum()).backward()
    return (c.detach(), r.detach(), nc, nr), [p.grad.clone() if p.grad is not None else None for p in params]


@pytest.mark.parametrize("style", ["openflamingo", "native"])
@pytest.mark.parametrize("name", FAMILY_PRESETS + VARIANT_PRESETS)
def test_shared_context_equals_naive(name, style):
    lmm = load_model(name)
    lmm.prepare_training(TrainingSpec(policy="full"))  # gradients everywhere but the vision tower
    lmm.train(False)  # no dropout, so both paths see the same function
    data = _pairs(lmm.end_of_chunk, lmm if style == "native" else None)
    assert_same_pairs(_run(lmm, True, *data), _run(lmm, False, *data))


def test_a_leaky_mask_would_be_caught(monkeypatch):
    """If the rejected answer could see the chosen one, its log-prob would change: the equality above can fail."""
    import symdpo.models.scoring as scoring

    lmm = load_model("tiny-qwen2-vl")
    data = _pairs(lmm.end_of_chunk)
    with torch.no_grad():
        naive = lmm.pair_logps(*data, shared_prefix=False)[1]
        monkeypatch.setattr(scoring, "tree_mask", lambda c, a, b: torch.ones(
            c.shape[0], c.shape[1] + a.shape[1] + b.shape[1], c.shape[1] + a.shape[1] + b.shape[1],
            dtype=torch.bool).tril())
        leaky = lmm.pair_logps(*data, shared_prefix=True)[1]
    assert (leaky - naive).abs().max() > 1e-4
