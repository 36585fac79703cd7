"""Our on-disk format: ``config.json`` + ``tokenizer/`` + safetensors weights, written atomically.

A full save (``model.safetensors``) rebuilds without any download: the LM and CLIP configs are stored
beside the weights. A fine-tune save (``trainable.safetensors``) holds only the trainable parameters
(perceiver, cross-attention, input embeddings, and anything else left trainable, e.g. LoRA) and names its
``base`` (a preset or a full save), which is loaded first.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from symdpo.atomic import atomic_directory
from symdpo.models.errors import CheckpointError

FORMAT = "symdpo-flamingo"


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Return the parameters a fine-tune changes: OpenFlamingo's trainable set plus any other trainable one."""
    embed = model.lm.get_input_embeddings().weight
    out = {}
    for name, p in model.named_parameters():
        if name.startswith("new_rows."):  # merged into the embedding matrix (saved below under its name)
            continue
        if name.startswith(("perceiver.", "xattn.")) or p is embed or p.requires_grad:
            out[name] = p.detach()
    return out


def save_flamingo(lmm, path: str | Path, *, trainable_only: bool = False) -> None:
    """Write ``lmm`` to directory ``path``; replaces an existing one only once the new one is complete."""
    path = Path(path)
    model = lmm.model
    base = getattr(lmm, "source", None)
    if trainable_only and base is None:
        raise ValueError("a trainable-only save needs a base model (load it from a preset or a full save first)")
    config = {
        "format": FORMAT,
        "flamingo": lmm.config.model_dump(),
        "lm_config": model.lm.config.to_dict(),
        "vision_config": model.vision.config.to_dict(),
        "base": str(base) if trainable_only else None,
    }
    if getattr(model, "new_rows", None) is not None:
        model.new_rows.merge()  # trained new-token rows (train.params.NewTokenRows) into the matrix saved
    with atomic_directory(path) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
        lmm.tokenizer.save_pretrained(tmp / "tokenizer")
        if trainable_only:
            save_file({k: v.contiguous() for k, v in trainable_state(model).items()}, tmp / "trainable.safetensors")
        else:
            state = dedup_tied({k: v for k, v in model.state_dict().items() if not k.startswith("new_rows.")})
            save_file({k: v.contiguous() for k, v in state.items()}, tmp / "model.safetensors")


def dedup_tied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``state`` without the second name of tensors shared between keys (tied embeddings); drop the second name of tensors shared between keys (tied embeddings); safetensors refuses aliases."""
    seen: set[tuple] = set()
    out = {}
    for k, v in state.items():
        key = (v.data_ptr(), tuple(v.shape), v.stride())
        if v.numel() and key in seen:
            continue
        seen.add(key)
        out[k] = v
    return out


def load_strict(model, state: dict[str, torch.Tensor], source: Path, *, partial: bool) -> None:
    """Copy ``state`` into ``model``; every key must fit (all of them unless ``partial``), else CheckpointError."""
    ours = model.state_dict()
    unexpected = [k for k in state if k not in ours]
    bad_shape = [k for k in state if k in ours and state[k].shape != ours[k].shape]
    missing = [] if partial else [k for k in dedup_tied(ours) if k not in state]
    if unexpected or bad_shape or missing:
        raise CheckpointError(
            f"{source} does not fit the model: unexpected {unexpected[:5]}, missing {missing[:5]}, shape mismatch {bad_shape[:5]}"
        )
    with torch.no_grad():
        for k, v in state.items():
            ours[k].copy_(v)


def read_config(path: str | Path) -> dict:
    """Return the ``config.json`` of a Flamingo model directory, checked to be ours."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path}: not a symdpo model directory (no config.json)")
    try:
        meta = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_file}: invalid JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{cfg_file}: not a {FORMAT} config (format={meta.get('format')!r})")
    return meta
