"""MPT attention through fused SDPA equals transformers' own eager `MptAttention` (the code it replaces)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F
from transformers import MptConfig, MptForCausalLM

from symdpo.models.flamingo.mpt_attention import SdpaMptAttention, use_sdpa_attention
from symdpo.models.flamingo.mpt_convert import add_qk_layernorm


def _models(qk_ln: bool):
    torch.manual_seed(0)
    eager = MptForCausalLM(MptConfig(d_model=32, n_heads=4, n_layers=3, max_seq_len=64, vocab_size=100, no_bias=True))
    if qk_ln:
        add_qk_layernorm(eager)
    fused = use_sdpa_attention(copy.deepcopy(eager))
    assert all(type(b.attn) is SdpaMptAttention for b in fused.transformer.blocks)
    return eager.eval(), fused.eval()


def _batch():
    ids = torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding
    mask[2, :9] = 0
    return ids, mask


@pytest.mark.parametrize("qk_ln", [False, True])
def test_sdpa_logits_and_gradients_equal_eager(qk_ln):
    eager, fused = _models(qk_ln)
    ids, mask = _batch()
    keep = mask.bool()
    out = {}
    for name, model in (("eager", eager), ("fused", fused)):
        logits = model(input_ids=ids, attention_mask=mask).logits
        (logits[keep].square().mean()).backward()
        out[name] = logits[keep].detach(), {n: p.grad for n, p in model.named_parameters()}
    torch.testing.assert_close(out["fused"][0], out["eager"][0], atol=1e-5, rtol=1e-5)
    for n, g in out["eager"][1].items():
        torch.testing.assert_close(out["fused"][1][n], g, atol=1e-5, rtol=1e-4, msg=n)


def test_sdpa_cached_generation_equals_eager():
    eager, fused = _models(qk_ln=True)
    ids, mask = _batch()
    a = eager.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    b = fused.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(a, b)


def test_bias_built_once_per_forward(monkeypatch):
    _, fused = _models(qk_ln=False)
    ids, mask = _batch()
    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        seen.append(attn_mask)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    fused(input_ids=ids, attention_mask=mask)
    assert len(seen) == 3 and all(m is seen[0] for m in seen)  # one (batch, heads, q, k) tensor for all layers
    fused(input_ids=ids[:2], attention_mask=mask[:2])
    assert seen[3] is not seen[0] and seen[3].shape[0] == 2  # a new forward pass builds its own
