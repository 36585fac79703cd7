"""Contexts and a tiny MPT Flamingo shared by the pair log-prob tests (test_logps, test_packing)."""

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
