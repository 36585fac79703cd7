"""Build a Flamingo from a `FlamingoConfig`: pretrained or config-only LM and CLIP, tokenizer, special tokens."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, CLIPVisionConfig, CLIPVisionModel

from symdpo.models.errors import UnknownModelError
from symdpo.models.flamingo.lmm import FlamingoLMM
from symdpo.models.flamingo.model import Flamingo
from symdpo.models.flamingo.presets import CLIP_L14, PRESETS, smollm2_gguf
from symdpo.models.flamingo.tokens import END_OF_CHUNK, IMAGE_TOKEN, add_flamingo_tokens

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class FlamingoConfig(BaseModel):
    """Everything needed to rebuild a Flamingo's architecture (weights come separately)."""

    model_config = ConfigDict(extra="forbid")

    # A transformers model id / local dir, or a config dict (with "model_type") for random weights.
    lm: str | dict[str, Any]
    # "mosaicgpt": the MosaicGPT remote-code checkpoints of OpenFlamingo-3B, converted to native MPT.
    lm_format: Literal["hf", "mosaicgpt", "gguf"] = "hf"
    lm_gguf_file: str | None = None
    tokenizer: str | None = None  # defaults to ``lm`` when that is a path; "tiny" trains one on the fly
    vision: str | dict[str, Any] = CLIP_L14
    cross_attn_every_n_layers: int = 1
    perceiver_depth: int = 6
    perceiver_heads: int = 8
    perceiver_dim_head: int = 64
    num_latents: int = 64
    perceiver_ff_mult: int = 4
    xattn_heads: int = 8
    xattn_dim_head: int = 64
    xattn_ff_mult: int = 4
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    seed: int = 0  # for the randomly initialised parts


def load_tokenizer(cfg: FlamingoConfig):
    """Return the config's tokenizer with OpenFlamingo's special tokens added."""
    name = cfg.tokenizer or (cfg.lm if isinstance(cfg.lm, str) else None)
    if name == "tiny":
        from symdpo.models.tokenizers import train_tiny_tokenizer

        tok = train_tiny_tokenizer()
    elif name is None:
        raise ValueError("FlamingoConfig.tokenizer is required when the LM is given as a config dict")
    elif cfg.lm_format == "gguf" and name == cfg.lm:
        tok = AutoTokenizer.from_pretrained(gguf_as_transformers(cfg.lm, cfg.lm_gguf_file))
    else:
        tok = AutoTokenizer.from_pretrained(name)
    add_flamingo_tokens(tok)
    return tok


def load_lm(cfg: FlamingoConfig):
    """Return the causal LM: pretrained weights, or random weights from a config dict."""
    dtype = DTYPES[cfg.dtype]
    if isinstance(cfg.lm, dict):
        spec = dict(cfg.lm)
        lm_cfg = AutoConfig.for_model(spec.pop("model_type"), **spec)
        lm = AutoModelForCausalLM.from_config(lm_cfg, dtype=dtype)
        if getattr(getattr(lm_cfg, "attn_config", None), "qk_ln", False):  # a converted MosaicGPT, saved by us
            from symdpo.models.flamingo.mpt_convert import add_qk_layernorm

            add_qk_layernorm(lm)
    elif cfg.lm_format == "mosaicgpt":
        from symdpo.models.flamingo.mpt_convert import load_mosaic_as_mpt

        lm = load_mosaic_as_mpt(_local_dir(cfg.lm)).to(dtype)
    elif cfg.lm_format == "gguf":
        lm = AutoModelForCausalLM.from_pretrained(gguf_as_transformers(cfg.lm, cfg.lm_gguf_file), dtype=dtype)
    else:
        lm = AutoModelForCausalLM.from_pretrained(cfg.lm, dtype=dtype)
    if lm.config.model_type == "mpt":  # transformers' MPT attention is eager-only
        from symdpo.models.flamingo.mpt_attention import use_sdpa_attention

        use_sdpa_attention(lm)
    return lm


def load_vision(cfg: FlamingoConfig) -> CLIPVisionModel:
    """Return the CLIP vision tower, frozen."""
    if isinstance(cfg.vision, dict):
        vision = CLIPVisionModel(CLIPVisionConfig(**cfg.vision))
    else:
        vision = CLIPVisionModel.from_pretrained(cfg.vision)
    return vision.to(DTYPES[cfg.dtype]).requires_grad_(False).eval()


def hub_repos(cfg: FlamingoConfig) -> list[str]:
    """Return the hub ids building ``cfg`` reads (LM, tokenizer, CLIP), leaving out config dicts and local dirs."""
    import os

    names = [cfg.lm, cfg.tokenizer, cfg.vision]
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n != "tiny" and not os.path.isdir(n)))


def build_flamingo(cfg: FlamingoConfig, *, name: str | None = None) -> FlamingoLMM:
    """Return a FlamingoLMM with pretrained/random backbones and freshly initialised Flamingo layers.

    A backbone on the hub that is not cached while the hub is unreachable raises HubUnavailableError at once
    (naming it, and ``name`` when given), before anything loads.
    """
    from symdpo.models.hub import hub_access

    torch.manual_seed(cfg.seed)  # random parts (tiny backbones, perceiver, cross-attention) are reproducible
    with hub_access([(r, None) for r in hub_repos(cfg)], model_name=name):
        tok = load_tokenizer(cfg)
        lm = load_lm(cfg)
        vision = load_vision(cfg)
    # OpenFlamingo resizes to len(tokenizer): the released checkpoints' embedding matrices have that many rows
    lm.resize_token_embeddings(len(tok), mean_resizing=False)
    model = Flamingo(
        vision, lm,
        media_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
        eoc_token_id=tok.convert_tokens_to_ids(END_OF_CHUNK),
        cross_attn_every_n_layers=cfg.cross_attn_every_n_layers,
        perceiver_depth=cfg.perceiver_depth, perceiver_heads=cfg.perceiver_heads,
        perceiver_dim_head=cfg.perceiver_dim_head, num_latents=cfg.num_latents,
        perceiver_ff_mult=cfg.perceiver_ff_mult, xattn_heads=cfg.xattn_heads,
        xattn_dim_head=cfg.xattn_dim_head, xattn_ff_mult=cfg.xattn_ff_mult,
    )
    model.perceiver.to(DTYPES[cfg.dtype])
    model.xattn.to(DTYPES[cfg.dtype])
    return FlamingoLMM(model, tok, config=cfg, image_size=vision.config.image_size)


def gguf_as_transformers(directory: str, gguf_file: str | None) -> str:
    """Return a directory holding the GGUF model converted to transformers' format (converted once, cached).

    De-quantising a GGUF and converting its tokenizer takes tens of seconds on a CPU; the safetensors copy
    loads in about one.
    """
    import hashlib
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from safetensors.torch import save_file

    from symdpo.atomic import cache_root

    if gguf_file is None:
        raise ValueError("lm_format 'gguf' needs lm_gguf_file")
    src = Path(directory) / gguf_file
    key = hashlib.sha256(f"{src.resolve()}:{src.stat().st_size}:{src.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    cache = cache_root() / "gguf" / f"{src.stem}-{key}"
    if not (cache / "config.json").exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
        try:
            lm = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file)
            # transformers refuses to save a model loaded from GGUF (it is marked quantized though de-quantised
            # to fp32): write the plain config and weights ourselves
            config = lm.config.to_dict()
            config.pop("quantization_config", None)
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
            state, seen = {}, set()
            for k, v in lm.state_dict().items():
                if v.data_ptr() not in seen:  # tied lm_head: transformers re-ties it on load
                    seen.add(v.data_ptr())
                    state[k] = v.contiguous()
            save_file(state, tmp / "model.safetensors")
            AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file).save_pretrained(tmp)
            os.replace(tmp, cache)  # atomic: a concurrent converter either wins or finds it done
        except OSError:
            if not (cache / "config.json").exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(cache)


def _local_dir(name: str) -> str:
    import os

    if os.path.isdir(name):
        return name
    from huggingface_hub import snapshot_download

    return snapshot_download(name)


def preset_config(name: str):
    """Return the FlamingoConfig of a preset."""
    if name not in PRESETS:
        raise UnknownModelError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    fields = dict(PRESETS[name].flamingo)
    if fields.get("lm") == "smollm2":
        fields["lm"], fields["lm_gguf_file"] = smollm2_gguf()
    return FlamingoConfig(**fields)
