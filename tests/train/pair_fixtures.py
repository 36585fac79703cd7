"""Contexts, a tiny MPT Flamingo, and the gradient check shared by the pair log-prob tests (test_logps,
test_packing, tests/models/hf/test_hf_shared_prefix)."""

from __future__ import annotations

import torch

EOC = "<|endofchunk|>"


def ctx(images, q="what shape is it?", shots=2, prefix=" Short answer:"):
    """Return an interleaved OpenFlamingo VQA context with ``shots`` demos and the open query."""
    out = []
    for i in range(shots):
        out += [images[i], f"Question:{q}{prefix}blarf{i}{EOC}"]
    return out + [images[shots], f"Question:{q}{prefix}"]


def mpt_lmm():
    """Return a tiny Flamingo on MPT (ALiBi, no position ids: OpenFlamingo-3B's LM family), gates open."""
    from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo
    from symdpo.models.flamingo.presets import TINY_CLIP, TINY_XATTN

    lm = dict(model_type="mpt", d_model=64, n_heads=4, n_layers=3, max_seq_len=512, vocab_size=512, no_bias=True)
    m = build_flamingo(FlamingoConfig(lm=lm, tokenizer="tiny", vision=TINY_CLIP, **TINY_XATTN))
    with torch.no_grad():  # as the `lmm` fixture: closed gates would hide the cross-attention
        for name, p in m.model.named_parameters():
            if name.endswith(("attn_gate", "ff_gate")):
                p.fill_(0.7)
    return m


def pair_grads(model, params, contexts, chosen, rejected, **kwargs):
    """Return ((chosen, rejected, counts...), gradients of ``params``) of ``model.pair_logps(..., **kwargs)``.

    The loss weighs both answers differently, so a swapped or shared gradient path would show.
    """
    for p in params:
        p.grad = None
    c, r, nc, nr = model.pair_logps(contexts, chosen, rejected, **kwargs)
    (c.sum() * 0.7 - r.sum() * 1.3).backward()
    return (c.detach(), r.detach(), nc, nr), [p.grad.clone() if p.grad is not None else None for p in params]


def assert_same_pairs(got, want) -> None:
    """Assert equal pair log-probs (1e-5, sums near -80 carry fp32 rounding: rtol 1e-6 on top) and gradients."""
    (vals, grads), (ref_vals, ref_grads) = got, want
    for s, n in zip(vals, ref_vals, strict=True):
        torch.testing.assert_close(s, n, atol=1e-5, rtol=1e-6)
    assert sum(g is not None and g.abs().sum() > 0 for g in grads) > 3
    for gs, gn in zip(grads, ref_grads, strict=True):
        if gs is None or gn is None:
            assert gs is None and gn is None
        else:
            torch.testing.assert_close(gs, gn, atol=1e-5, rtol=1e-5)
