"""Load OpenFlamingo's released ``checkpoint.pt`` into our Flamingo, by a strict mapping of parameter names.

OpenFlamingo registers each gated cross-attention block and decoder layer under several names
(``lang_encoder.gated_cross_attn_layers.i``, ``lang_encoder.<layers>.i.gated_cross_attn_layer``,
``lang_encoder.old_decoder_blocks.i``, ``lang_encoder.<layers>.i.decoder_layer``); its trainer saves the
trainable parameters plus the embeddings. The reference loads them with ``strict=False`` and so never
notices a key that went nowhere; here every key must land on one of our parameters with the same shape,
and every Flamingo parameter (perceiver, cross-attention) and the input embeddings must be given.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from symdpo.models.errors import CheckpointError
from symdpo.models.flamingo.model import Flamingo

_PERCEIVER_BLOCK = re.compile(r"^perceiver\.layers\.(\d+)\.([01])\.(.*)$")
_XATTN_ALIAS = re.compile(r"^lang_encoder\.gated_cross_attn_layers\.(\d+)\.(.*)$")
_OLD_BLOCK = re.compile(r"^lang_encoder\.old_decoder_blocks\.(\d+)\.(.*)$")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Return the state dict in an OpenFlamingo ``checkpoint.pt`` (raw, or a trainer's ``model_state_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code from a download
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        # torch's own message is long and suggests weights_only=False, which we never do for a download
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupted or another format: {type(e).__name__})") from None
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict)")
    # DDP-wrapped saves prefix every key with "module."
    return {k.removeprefix("module."): v for k, v in obj.items()}


def map_openflamingo_keys(
    sd: dict[str, torch.Tensor], *, decoder_layers_path: str, lm_key=lambda k: k
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Return (our-name -> tensor, keys that map nowhere). ``lm_key`` renames LM keys (e.g. MosaicGPT -> MPT)."""
    layer_alias = re.compile(rf"^lang_encoder\.{re.escape(decoder_layers_path)}\.(\d+)\.(gated_cross_attn_layer|decoder_layer)\.(.*)$")
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in sd.items():
        target = None
        if m := _PERCEIVER_BLOCK.match(key):
            target = f"perceiver.layers.{m[1]}.{'attn' if m[2] == '0' else 'ff'}.{m[3]}"
        elif key.startswith("perceiver."):
            target = key
        elif m := _XATTN_ALIAS.match(key):
            target = f"xattn.{m[1]}.{m[2]}"
        elif m := layer_alias.match(key):
            if m[2] == "gated_cross_attn_layer":
                target = f"xattn.{m[1]}.{m[3]}"
            else:
                renamed = lm_key(f"{decoder_layers_path}.{m[1]}.{m[3]}")
                target = renamed and f"lm.{renamed}"
        elif m := _OLD_BLOCK.match(key):
            renamed = lm_key(f"{decoder_layers_path}.{m[1]}.{m[2]}")
            target = renamed and f"lm.{renamed}"
        elif key.startswith("lang_encoder."):
            renamed = lm_key(key.removeprefix("lang_encoder."))
            target = renamed and f"lm.{renamed}"
        if target is None:
            unmapped.append(key)
        else:
            out[target] = value
    return out, unmapped


def load_openflamingo_checkpoint(model: Flamingo, path: str | Path, *, lm_format: str = "hf") -> list[str]:
    """Load ``path`` into ``model`` strictly; return the LM parameters it left at the base LM's values."""
    sd = read_checkpoint(path)
    lm_key = _lm_key_renamer(lm_format)
    mapped, unmapped = map_openflamingo_keys(sd, decoder_layers_path=model.decoder_layers_path, lm_key=lm_key)
    ours = model.state_dict()
    unexpected = sorted(unmapped + [k for k in mapped if k not in ours])
    if any(k.startswith("vision_encoder.") for k in unexpected):
        unexpected = [k for k in unexpected if not k.startswith("vision_encoder.")] + [
            "vision_encoder.* (CLIP weights come from the preset's vision model, not from checkpoint.pt)"
        ]
    shape = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(ours[k].shape)}"
        for k, v in mapped.items() if k in ours and v.shape != ours[k].shape
    ]
    embed = f"lm.{_param_name(model.lm, model.lm.get_input_embeddings().weight)}"
    required = [k for k in ours if k.startswith(("perceiver.", "xattn."))] + [embed]
    missing = sorted(k for k in required if k not in mapped)
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_short(unexpected)}")
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_short(missing)}")
    if shape:
        problems.append(f"{len(shape)} shape mismatch(es): {_short(shape)}")
    if problems:
        raise CheckpointError(f"{path} does not fit this model (is it for another architecture?): " + "; ".join(problems))
    model.load_state_dict(mapped, strict=False)
    loaded = {ours[k].data_ptr() for k in mapped}  # tied weights (lm_head = embeddings) count as loaded
    return sorted(k for k, v in ours.items() if k.startswith("lm.") and k not in mapped and v.data_ptr() not in loaded)


def _lm_key_renamer(lm_format: str):
    if lm_format == "mosaicgpt":
        from symdpo.models.flamingo.mpt_convert import mosaic_key_to_mpt

        return mosaic_key_to_mpt
    return lambda k: k


def _param_name(module: torch.nn.Module, param: torch.Tensor) -> str:
    return next(n for n, p in module.named_parameters() if p is param)


def _short(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", … (+{len(keys) - n})" if len(keys) > n else "")
