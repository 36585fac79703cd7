"""Load MosaicGPT checkpoints into transformers' native `MptForCausalLM`, so no remote code runs.

OpenFlamingo-3B's LM, `anas-awadalla/mpt-1b-redpajama-200b` (a copy of `mosaicml/mpt-1b-redpajama-200b`, April
2023), ships the remote-code model "MosaicGPT" from mosaicml/examples (`examples/llm/src/models/mosaic_gpt/` and
`layers/{attention,gpt_blocks}.py`, commit cffc1ad1). Its config: ALiBi (no position embeddings), QK LayerNorm,
no biases anywhere (LayerNorms included), GELU MLP of width 4*d_model, output embedding tied to `wte`.
transformers' MPT computes the same function except QK LayerNorm, which `MptAttention` lacks (it reads neither
`attn_config.qk_ln` nor `alibi_bias_max`); `add_qk_layernorm` adds it without renaming any parameter.

OpenFlamingo-9B's LM, `anas-awadalla/mpt-7b`, is MPT proper (no QK LayerNorm): `MptForCausalLM.from_pretrained`
loads it natively, with no conversion.

A converted model saved with `save_pretrained` keeps `attn.q_ln`/`attn.k_ln`, but a plain
`MptForCausalLM.from_pretrained` would drop them (it ignores `qk_ln`): rebuild with `add_qk_layernorm` before
loading such a state dict.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import MptConfig, MptForCausalLM

# MosaicGPTConfig's own defaults: a key absent from config.json means this value, not transformers' default
# (e.g. MosaicGPT defaults to alibi=False and no_bias=False, MPT to the opposite).
_MOSAIC_DEFAULTS: dict[str, Any] = {
    "d_model": 2048, "n_heads": 16, "n_layers": 24, "mlp_ratio": 4, "max_seq_len": 2048, "vocab_size": 50368,
    "attn_pdrop": 0.0, "resid_pdrop": 0.0, "emb_pdrop": 0.0, "attn_qk_ln": False, "attn_clip_qkv": None,
    "softmax_scale": None, "prefix_lm": False, "attn_uses_sequence_id": False, "alibi": False,
    "alibi_bias_max": 8, "logit_scale": None, "no_bias": False, "embedding_fraction": 1.0, "use_cache": False,
}

# Settings MptForCausalLM hard-codes: the only value it can reproduce, and why.
_REQUIRED: dict[str, tuple[Any, str]] = {
    "alibi": (True, "MptModel always uses ALiBi and has no learned position embeddings"),
    "alibi_bias_max": (8, "MptModel builds ALiBi with alibi_bias_max=8 whatever the config says"),
    "mlp_ratio": (4, "MptMLP's width is hard-coded to 4 * d_model"),
    "no_bias": (True, "MPT's linear layers and LayerNorms have no biases"),
    "logit_scale": (None, "MptForCausalLM ignores logit_scale"),
    "prefix_lm": (False, "MptModel is causal only"),
    "attn_uses_sequence_id": (False, "MptModel has no sequence-id masking"),
    "embedding_fraction": (1.0, "MptModel does not scale embedding gradients"),
    # MPT routes dropout differently (attn_pdrop also drives residual and MLP dropout; emb_pdrop is unused)
    "attn_pdrop": (0.0, "MPT applies dropout at other places"),
    "resid_pdrop": (0.0, "MPT applies dropout at other places"),
    "emb_pdrop": (0.0, "MPT applies dropout at other places"),
}

# MosaicGPT parameter name -> MPT parameter name (q_ln/k_ln keep their names: add_qk_layernorm registers them).
_KEY_MAP: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"transformer\.wte\.weight"), "transformer.wte.weight"),
    (re.compile(r"transformer\.ln_f\.weight"), "transformer.norm_f.weight"),
    (re.compile(r"transformer\.blocks\.(\d+)\.ln_1\.weight"), r"transformer.blocks.\1.norm_1.weight"),
    (re.compile(r"transformer\.blocks\.(\d+)\.ln_2\.weight"), r"transformer.blocks.\1.norm_2.weight"),
    (re.compile(r"transformer\.blocks\.(\d+)\.attn\.(Wqkv|out_proj|q_ln|k_ln)\.weight"),
     r"transformer.blocks.\1.attn.\2.weight"),
    (re.compile(r"transformer\.blocks\.(\d+)\.mlp\.mlp_up\.weight"), r"transformer.blocks.\1.ffn.up_proj.weight"),
    (re.compile(r"transformer\.blocks\.(\d+)\.mlp\.mlp_down\.weight"),
     r"transformer.blocks.\1.ffn.down_proj.weight"),
]


def mosaic_config_to_mpt(cfg: dict[str, Any]) -> MptConfig:
    """Return the MptConfig equivalent to a MosaicGPT config.json dict; raise ValueError for what MPT cannot do."""
    c = {**_MOSAIC_DEFAULTS, **cfg}
    problems = [f"{key}={c[key]!r} (needs {want!r}: {why})" for key, (want, why) in _REQUIRED.items()
                if c[key] != want]
    # MosaicGPT (before mosaicml/examples#307) and MPT compute different ALiBi slopes unless n_heads is 2**k
    if c["n_heads"] & (c["n_heads"] - 1):
        problems.append(f"n_heads={c['n_heads']} (needs a power of two: ALiBi slopes differ otherwise)")
    if problems:
        raise ValueError("MosaicGPT config not representable as transformers MPT: " + "; ".join(problems))
    return MptConfig(
        d_model=c["d_model"], n_heads=c["n_heads"], n_layers=c["n_layers"], expansion_ratio=c["mlp_ratio"],
        max_seq_len=c["max_seq_len"], vocab_size=c["vocab_size"], no_bias=True, tie_word_embeddings=True,
        use_cache=bool(c["use_cache"]), layer_norm_epsilon=1e-5,  # nn.LayerNorm's default, which MosaicGPT uses
        # attn_pdrop is declared `int` in transformers 5's MptAttentionConfig, so pass 0 and not 0.0
        attn_config={"attn_pdrop": 0, "clip_qkv": c["attn_clip_qkv"], "softmax_scale": c["softmax_scale"],
                     "qk_ln": bool(c["attn_qk_ln"]), "alibi": True, "alibi_bias_max": 8},
    )


def mosaic_key_to_mpt(key: str) -> str | None:
    """Return the MPT parameter name for a MosaicGPT one, or None when it has no counterpart."""
    for pattern, replacement in _KEY_MAP:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


def convert_mosaic_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the MosaicGPT state dict renamed for MptForCausalLM; raise ValueError naming any unknown key."""
    unknown = sorted(k for k in sd if mosaic_key_to_mpt(k) is None)
    if unknown:
        raise ValueError(f"unknown MosaicGPT parameter names ({len(unknown)}): {', '.join(unknown)}")
    return {mosaic_key_to_mpt(k): v for k, v in sd.items()}  # type: ignore[misc]


def _qk_layernorm_hook(attn: nn.Module, clip: float | None, _module, _inputs, qkv: torch.Tensor) -> torch.Tensor:
    # MosaicGPT's order: clip the fused qkv, then LayerNorm q and k over the whole d_model (not per head)
    if clip:
        qkv = qkv.clamp(min=-clip, max=clip)
    q, k, v = qkv.chunk(3, dim=-1)
    return torch.cat([attn.q_ln(q).to(q.dtype), attn.k_ln(k).to(k.dtype), v], dim=-1)


def add_qk_layernorm(model: MptForCausalLM) -> MptForCausalLM:
    """Return `model` with MosaicGPT's QK LayerNorm (`attn.q_ln`, `attn.k_ln`) added to every block, in place."""
    d_model, eps = model.config.d_model, model.config.layer_norm_epsilon
    for block in model.transformer.blocks:
        attn = block.attn
        if hasattr(attn, "q_ln"):
            continue
        ref = attn.Wqkv.weight
        attn.q_ln = nn.LayerNorm(d_model, eps=eps, bias=False, device=ref.device, dtype=ref.dtype)
        attn.k_ln = nn.LayerNorm(d_model, eps=eps, bias=False, device=ref.device, dtype=ref.dtype)
        # the hook runs on Wqkv's output, before MptAttention's own clamp: clip there instead, in MosaicGPT's order
        attn.Wqkv.register_forward_hook(functools.partial(_qk_layernorm_hook, attn, attn.clip_qkv))
        attn.clip_qkv = None
    model.config.attn_config.qk_ln = True
    return model


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Return the state dict stored as (sharded) safetensors or PyTorch .bin under `path` (a file or directory)."""
    if path.is_dir():
        for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json"):
            if (path / name).exists():
                return _read_weights(path / name)
        raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin (or index) in {path}")
    if path.name.endswith(".index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in _read_weights(path.parent / shard).items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_mosaic_as_mpt(path_or_dir: str | Path, *, dtype: torch.dtype = torch.float32) -> MptForCausalLM:
    """Return the MosaicGPT checkpoint directory (config.json + weights) as an eval-mode MptForCausalLM."""
    path = Path(path_or_dir)
    config = mosaic_config_to_mpt(json.loads((path / "config.json").read_text()))
    sd = {k: v.to(dtype) for k, v in convert_mosaic_state_dict(_read_weights(path)).items()}
    with torch.device("meta"):  # no random init of 1.3B parameters that are overwritten next
        model = MptForCausalLM(config)
        if config.attn_config.qk_ln:
            add_qk_layernorm(model)
    missing, _ = model.load_state_dict(sd, strict=False, assign=True)
    if set(missing) - {"lm_head.weight"}:  # lm_head is tied to wte below
        raise ValueError(f"MosaicGPT checkpoint lacks: {', '.join(sorted(set(missing) - {'lm_head.weight'}))}")
    model.tie_weights()
    return model.eval()


__all__ = ["add_qk_layernorm", "convert_mosaic_state_dict", "load_mosaic_as_mpt", "mosaic_config_to_mpt",
           "mosaic_key_to_mpt"]
