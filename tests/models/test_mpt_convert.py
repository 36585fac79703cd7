"""MosaicGPT -> transformers MPT conversion: identical logits, strict key mapping.

The reference side is a small re-implementation of the MosaicGPT forward ("attn_impl: torch") as uploaded to
mosaicml/mpt-1b-redpajama-200b on 2023-04-19, read from mosaicml/examples at commit cffc1ad1:
examples/llm/src/models/mosaic_gpt/mosaic_gpt.py (MosaicGPT.__init__/_attn_bias/forward),
examples/llm/src/models/layers/gpt_blocks.py (GPTBlock, GPTMLP) and
examples/llm/src/models/layers/attention.py (MultiheadAttention, scaled_multihead_dot_product_attention,
alibi_bias — the pre-#307 slope formula). Parameter names, the `no_bias` removal and the tied output embedding
follow those files.
"""

import json
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from transformers import MptForCausalLM

from symdpo.models.flamingo.mpt_convert import (
    add_qk_layernorm,
    convert_mosaic_state_dict,
    load_mosaic_as_mpt,
    mosaic_config_to_mpt,
)

# the real mpt-1b-redpajama-200b config.json, shrunk
TINY = {"d_model": 32, "n_heads": 4, "n_layers": 2, "mlp_ratio": 4, "max_seq_len": 16, "vocab_size": 50,
        "alibi": True, "alibi_bias_max": 8, "attn_qk_ln": True, "attn_clip_qkv": None, "attn_impl": "torch",
        "no_bias": True, "low_precision_layernorm": True, "softmax_scale": None, "logit_scale": None,
        "attn_pdrop": 0, "resid_pdrop": 0, "emb_pdrop": 0, "model_type": "mosaic_gpt", "init_std": 0.02}


class MosaicAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, qk_ln: bool, clip: float | None):
        super().__init__()
        self.n_heads, self.qk_ln, self.clip = n_heads, qk_ln, clip
        self.Wqkv = nn.Linear(d, 3 * d)
        if qk_ln:
            self.q_ln, self.k_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, attn_bias, key_padding_mask):
        qkv = self.Wqkv(x)
        if self.clip:
            qkv = qkv.clamp(min=-self.clip, max=self.clip)
        q, k, v = qkv.chunk(3, dim=2)
        if self.qk_ln:
            q, k = self.q_ln(q).to(q.dtype), self.k_ln(k).to(k.dtype)
        b, s, d = q.shape
        q, k, v = (t.view(b, s, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        w = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads)  # (B, nh, S, S)
        w = w + attn_bias[:, :, -s:, -s:]
        min_val = torch.finfo(w.dtype).min
        if key_padding_mask is not None:
            w = w.masked_fill(~key_padding_mask.view(b, 1, 1, s), min_val)
        causal = ~torch.ones(s, s, dtype=torch.bool).tril()
        w = w.masked_fill(causal.view(1, 1, s, s), min_val)
        out = (w.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
        return self.out_proj(out)


class MosaicBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, mlp_ratio: int, qk_ln: bool, clip: float | None):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = MosaicAttention(d, n_heads, qk_ln, clip)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.mlp_up, self.mlp.mlp_down = nn.Linear(d, mlp_ratio * d), nn.Linear(mlp_ratio * d, d)

    def forward(self, x, attn_bias, key_padding_mask):
        x = x + self.attn(self.ln_1(x), attn_bias, key_padding_mask)
        return x + self.mlp.mlp_down(F.gelu(self.mlp.mlp_up(self.ln_2(x))))


class MosaicGPT(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        d = cfg["d_model"]
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(cfg["vocab_size"], d),
            "blocks": nn.ModuleList(MosaicBlock(d, cfg["n_heads"], cfg["mlp_ratio"], cfg["attn_qk_ln"],
                                                cfg["attn_clip_qkv"]) for _ in range(cfg["n_layers"])),
            "ln_f": nn.LayerNorm(d),
        })
        if cfg["no_bias"]:  # as in MosaicGPT.__init__: this removes the LayerNorm biases too
            for module in self.modules():
                if isinstance(getattr(module, "bias", None), nn.Parameter):
                    module.register_parameter("bias", None)

    def alibi_bias(self) -> torch.Tensor:
        # attention.alibi_bias(full=False): bias over key positions only, (1, nh, 1, max_seq_len)
        n_heads, seq_len = self.cfg["n_heads"], self.cfg["max_seq_len"]
        bias = torch.arange(1 - seq_len, 1, dtype=torch.float32).view(1, 1, 1, seq_len)
        m = torch.arange(1, n_heads + 1, dtype=torch.float32) * (self.cfg["alibi_bias_max"] / n_heads)
        return bias * (1.0 / (2 ** m.view(1, n_heads, 1, 1)))

    def forward(self, input_ids, attention_mask=None):
        x = self.transformer.wte(input_ids)
        mask = None if attention_mask is None else attention_mask.bool()
        for block in self.transformer.blocks:
            x = block(x, self.alibi_bias(), mask)
        return F.linear(self.transformer.ln_f(x), self.transformer.wte.weight)  # tied output embedding


def _mosaic(cfg: dict, seed: int = 0) -> MosaicGPT:
    torch.manual_seed(seed)
    model = MosaicGPT(cfg).eval()
    with torch.no_grad():  # random weights of a size that makes clipping, LayerNorm gains and ALiBi all matter
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    return model


def _mpt(cfg: dict, mosaic: MosaicGPT) -> MptForCausalLM:
    model = MptForCausalLM(mosaic_config_to_mpt(cfg))
    if cfg["attn_qk_ln"]:
        add_qk_layernorm(model)
    missing, unexpected = model.load_state_dict(convert_mosaic_state_dict(mosaic.state_dict()), strict=False)
    assert missing == ["lm_head.weight"] and unexpected == []  # lm_head is tied to wte
    return model.eval()


@pytest.mark.parametrize("qk_ln, clip", [(True, None), (False, None), (True, 0.6), (False, 0.6)])
def test_logits_match_mosaic_gpt(qk_ln, clip):
    cfg = {**TINY, "attn_qk_ln": qk_ln, "attn_clip_qkv": clip}
    mosaic = _mosaic(cfg)
    mpt = _mpt(cfg, mosaic)
    ids = torch.randint(0, cfg["vocab_size"], (3, 11))
    with torch.no_grad():
        want, got = mosaic(ids), mpt(ids).logits
    assert (want - got).abs().max() < 1e-5
    assert want.abs().max() > 1.0  # not a trivially small comparison


def test_left_padding_matches_on_real_tokens():
    mosaic = _mosaic(TINY)
    mpt = _mpt(TINY, mosaic)
    ids = torch.randint(0, TINY["vocab_size"], (2, 9))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with torch.no_grad():
        want, got = mosaic(ids, mask), mpt(ids, attention_mask=mask).logits
    real = mask.bool()
    assert (want[real] - got[real]).abs().max() < 1e-5


@pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")
def test_kv_cache_keeps_qk_layernorm():
    mpt = _mpt(TINY, _mosaic(TINY))
    ids = torch.randint(0, TINY["vocab_size"], (1, 8))
    with torch.no_grad():
        full = mpt(ids).logits[:, -1]
        cache = mpt(ids[:, :-1], use_cache=True).past_key_values
        step = mpt(ids[:, -1:], past_key_values=cache, use_cache=True).logits[:, -1]
    assert (full - step).abs().max() < 1e-5


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_load_mosaic_checkpoint_directory(tmp_path, fmt):
    mosaic = _mosaic(TINY, seed=1)
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    sd = {k: v.contiguous() for k, v in mosaic.state_dict().items()}
    if fmt == "bin":
        torch.save(sd, tmp_path / "pytorch_model.bin")
    else:
        save_file(sd, tmp_path / "model.safetensors")
    mpt = load_mosaic_as_mpt(tmp_path)
    assert not mpt.training and mpt.lm_head.weight is mpt.transformer.wte.weight
    ids = torch.randint(0, TINY["vocab_size"], (2, 7))
    with torch.no_grad():
        assert (mosaic(ids) - mpt(ids).logits).abs().max() < 1e-5


def test_unknown_key_raises_naming_it():
    sd = _mosaic(TINY).state_dict()
    sd["transformer.blocks.0.attn.rotary.inv_freq"] = torch.zeros(2)
    sd["transformer.ln_f.bias"] = torch.zeros(TINY["d_model"])
    with pytest.raises(ValueError, match=r"transformer\.blocks\.0\.attn\.rotary\.inv_freq.*transformer\.ln_f\.bias"):
        convert_mosaic_state_dict(sd)


@pytest.mark.parametrize("override, named", [
    ({"n_heads": 6, "d_model": 36}, "n_heads=6"),
    ({"alibi_bias_max": 16}, "alibi_bias_max=16"),
    ({"no_bias": False}, "no_bias=False"),
    ({"alibi": None}, "alibi"),
])
def test_unrepresentable_config_raises(override, named):
    cfg = {k: v for k, v in {**TINY, **override}.items() if v is not None}  # None: key absent -> MosaicGPT default
    with pytest.raises(ValueError, match=named):
        mosaic_config_to_mpt(cfg)
