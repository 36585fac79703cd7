"""torch.compile of the model's layers changes no result: a DPO step's loss and gradients, and generation.

Compared against: the same model run eagerly (transformers' and our layers as written), in fp32. Compilation
takes about a minute on two CPU cores, so these run in `make test-ci`.
"""

from __future__ import annotations

import copy

import pytest
import torch
from pair_fixtures import EOC, ctx

from symdpo.models.compiled import compile_layers, graphs_built, reset_compiled
from symdpo.train.losses import preference_loss

pytestmark = pytest.mark.ci


def _step(lmm, contexts, chosen, rejected):
    """Return a DPO loss (reference: zeros) with its gradients, as a training step computes them."""
    params = [p for p in lmm.module.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    c, r, _, _ = lmm.pair_logps(contexts, chosen, rejected, max_tokens_per_row=4096)
    losses, _, _ = preference_loss(c, r, torch.zeros_like(c), torch.zeros_like(r), beta=0.1, loss_type="sigmoid",
                                   label_smoothing=0.0)
    loss = losses.mean() - 0.5 * c.sum()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in params if p.grad is not None]


def test_compiled_step_and_generation_equal_eager(lmm, images):
    from symdpo.models.flamingo.training import set_openflamingo_trainable

    eager = copy.deepcopy(lmm)
    set_openflamingo_trainable(eager.model)
    compiled = copy.deepcopy(eager)
    reset_compiled()
    assert compile_layers(compiled) > 4
    batches = [([ctx(images, shots=1), ctx(images, shots=3)], ["red" + EOC, "circle" + EOC], ["x" + EOC, "no" + EOC]),
               ([ctx(images, shots=2), ctx(images, shots=4), ctx(images, shots=1, q="is it blue?")],
                ["a b" + EOC, "blue" + EOC, "yes" + EOC], ["c" + EOC, "zorblat" + EOC, "no no" + EOC])]
    built = []
    for contexts, chosen, rejected in batches:  # a second shape: dynamic shapes, no new graphs
        want, want_grads = _step(eager, contexts, chosen, rejected)
        got, got_grads = _step(compiled, contexts, chosen, rejected)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        assert len(got_grads) == len(want_grads) > 3
        for g, w in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)
        built.append(graphs_built())
    assert built[0] > 0 and built[1] == built[0], built
    eager.train(False)
    compiled.train(False)
    query = [ctx(images, shots=2), ctx(images, shots=1)]
    assert compiled.generate(query, max_new_tokens=6, num_beams=3) == eager.generate(query, max_new_tokens=6, num_beams=3)
