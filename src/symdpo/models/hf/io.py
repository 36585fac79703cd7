"""Our on-disk format for HF families: ``config.json`` + ``hf/`` (transformers weights and processor parts).

A full save (``hf/``) reloads with the model's own ``from_pretrained``; a fine-tune save
(``trainable.safetensors``) holds only the trainable parameters and names its ``base`` (a preset or a full
save), loaded first. Written into a temporary folder and renamed, so a crash never leaves half a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from symdpo.atomic import atomic_directory

FORMAT = "symdpo-hf"


def save_hf(lmm, path: str | Path, *, trainable_only: bool = False) -> None:
    """Write ``lmm`` to directory ``path``; replaces an existing one only once the new one is complete."""
    path = Path(path)
    if trainable_only and lmm.source is None:
        raise ValueError("a trainable-only save needs a base model (load it from a preset or a full save first)")
    meta = {"format": FORMAT, "family": lmm.family, "model_class": type(lmm.hf).__name__,
            "end_of_chunk": lmm.end_of_chunk, "max_length": lmm.max_length,
            "prompts": {k: f.to_dict() for k, f in lmm.prompts.items()}, "prompt_style": lmm.default_prompt_style,
            "base": str(lmm.source) if trainable_only else None}
    with atomic_directory(path) as tmp:
        (tmp / "config.json").write_text(json.dumps(meta, indent=2))
        if trainable_only:
            state = {n: p.detach().contiguous() for n, p in lmm.hf.named_parameters() if p.requires_grad}
            save_file(state, tmp / "trainable.safetensors")
        else:
            lmm.hf.save_pretrained(tmp / "hf")
            lmm.processor.tokenizer.save_pretrained(tmp / "hf")
            lmm.processor.image_processor.save_pretrained(tmp / "hf")
            extra = {k: getattr(lmm.processor, k) for k in lmm.spec.processor_keys}
            (tmp / "processor_parts.json").write_text(json.dumps({"class": type(lmm.processor).__name__, **extra}))
