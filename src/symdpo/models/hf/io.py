"""Our on-disk format for HF families: ``config.json`` + ``hf/`` (transformers weights and processor parts).

A full save (``hf/``) reloads with the model's own ``from_pretrained``; a fine-tune save
(``trainable.safetensors``) holds only the trainable parameters and names its ``base`` (a preset or a full
save), loaded first. Written into a temporary folder and renamed, so a crash never leaves half a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from symdpo.atomic import atomic_directory

FORMAT = "symdpo-hf"


def save_hf(lmm, path: str | Path, *, trainable_only: bool = False) -> None:
    """Write ``lmm`` to directory ``path``; replaces an existing one only once the new one is complete."""
    path = Path(path)
    if trainable_only and lmm.source is None:
        raise ValueError("a trainable-only save needs a base model (load it from a preset or a full save first)")
    meta = {"format": FORMAT, "family": lmm.family.name, "model_class": type(lmm.model.hf).__name__,
            "end_of_chunk": lmm.end_of_chunk, "max_length": lmm.max_length,
            "prompt_templates": lmm.prompt_templates, "base": str(lmm.source) if trainable_only else None}
    with atomic_directory(path) as tmp:
        (tmp / "config.json").write_text(json.dumps(meta, indent=2))
        if trainable_only:
            state = {n: p.detach().contiguous() for n, p in lmm.model.named_parameters() if p.requires_grad}
            save_file(state, tmp / "trainable.safetensors")
        else:
            lmm.model.hf.save_pretrained(tmp / "hf")
            lmm.processor.tokenizer.save_pretrained(tmp / "hf")
            lmm.processor.image_processor.save_pretrained(tmp / "hf")
            extra = {k: getattr(lmm.processor, k) for k in ("image_seq_len", "image_size") if hasattr(lmm.processor, k)}
            (tmp / "processor_parts.json").write_text(json.dumps({"class": type(lmm.processor).__name__, **extra}))


def is_hf_dir(path: str | Path) -> bool:
    """Return True when ``path`` is a directory written by `save_hf`."""
    cfg = Path(path) / "config.json"
    try:
        return cfg.is_file() and json.loads(cfg.read_text()).get("format") == FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def load_hf_dir(path: str | Path, *, dtype: str | None = None, trust_remote_code: bool = False):
    """Return the HFInterleavedLMM saved in directory ``path``."""
    import transformers as tf

    from symdpo.models.hf.adapter import HFInterleavedLMM
    from symdpo.models.hf.families import FAMILIES
    from symdpo.models.hf.processors import processor_from_parts

    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    if meta.get("base"):
        from symdpo.models.presets import load_model

        lmm = load_model(meta["base"], dtype=dtype)
        state = load_file(path / "trainable.safetensors")
        params = dict(lmm.model.named_parameters())
        unknown = [k for k in state if k not in params or params[k].shape != state[k].shape]
        if unknown:
            raise ValueError(f"{path / 'trainable.safetensors'} does not fit its base {meta['base']}: {unknown[:5]}")
        for k, v in state.items():
            params[k].data.copy_(v)
        lmm.source = str(path)
        return lmm
    family = FAMILIES[meta["family"]]
    kwargs = {"dtype": getattr(__import__("torch"), dtype)} if dtype else {}
    hf = getattr(tf, meta["model_class"]).from_pretrained(path / "hf", trust_remote_code=trust_remote_code, **kwargs)
    parts = json.loads((path / "processor_parts.json").read_text())
    processor = processor_from_parts(family, path / "hf", **{k: v for k, v in parts.items() if k != "class"})
    return HFInterleavedLMM(hf.eval(), processor, family=family, end_of_chunk=meta["end_of_chunk"],
                            max_length=meta["max_length"], prompt_templates=meta.get("prompt_templates"),
                            source=str(path))
