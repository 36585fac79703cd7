"""The one place that turns a name into a model: Flamingo and HF presets, ``hf:<hub id>``, saved folders.

`load_model(name_or_path)` returns an `InterleavedModel`; a fine-tune folder names its base (a preset or a
full save), which is loaded first through this same function. `presets()` lists every preset of every family.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from symdpo.models.errors import UnknownModelError
from symdpo.models.flamingo.presets import CHECKPOINT_FILE
from symdpo.models.flamingo.presets import PRESETS as FLAMINGO_PRESETS
from symdpo.models.hf.presets import HF_PRESETS, HUB_PREFIX, is_hf_name

# models shipped inside the package (symdpo/assets): full saves that load by name, with no download
BUNDLED = {
    "tiny-easyvqa": (Path(__file__).resolve().parents[1] / "assets" / "tiny-easyvqa",
                     "the demo's starting model: the tiny Flamingo pretrained on easy-VQA colour questions "
                     "(answers them in context); shipped, no download"),
}


@dataclass(frozen=True)
class PresetRow:
    """One line of ``symdpo model presets``."""

    name: str
    family: str
    source: str  # hub repository of the weights, or "offline"
    description: str


def presets() -> list[PresetRow]:
    """Return every preset of every family, Flamingo first."""
    rows = [PresetRow(p.name, "flamingo", p.checkpoint or "offline", p.description) for p in FLAMINGO_PRESETS.values()]
    rows += [PresetRow(name, "flamingo", "bundled", about) for name, (_, about) in BUNDLED.items()]
    rows += [PresetRow(p.name, p.family, p.repo or "offline", p.description) for p in HF_PRESETS.values()]
    return rows


def preset_names() -> list[str]:
    """Return the names of every preset."""
    return [p.name for p in presets()]


def saved_format(path: Path) -> str | None:
    """Return the ``format`` a symdpo model folder's ``config.json`` names, or None when it names none."""
    try:
        return json.loads((path / "config.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def weights_repo(name: str) -> tuple[str, tuple[str, ...] | None] | None:
    """Return (hub repo, files it must hold; None: its whole snapshot) of a preset's or ``hf:<id>``'s weights, or None."""
    if name in FLAMINGO_PRESETS:
        checkpoint = FLAMINGO_PRESETS[name].checkpoint
        return (checkpoint, (CHECKPOINT_FILE,)) if checkpoint else None
    if name in HF_PRESETS:
        return (HF_PRESETS[name].repo, None) if HF_PRESETS[name].repo else None
    return (name[len(HUB_PREFIX):], None) if name.startswith(HUB_PREFIX) else None


def load_model(name_or_path: str | Path, *, dtype: str | None = None, trust_remote_code: bool | None = None):
    """Return the model of a preset name, an ``hf:<hub id>``, or a directory written by ``save_pretrained``.

    HF-native families (IDEFICS, Idefics3/SmolVLM, Qwen2-VL, ``hf:<hub id>``) load without remote code unless
    ``trust_remote_code`` (or env SYMDPO_TRUST_REMOTE_CODE=1) allows it.
    """
    name = str(name_or_path)
    if name in BUNDLED:
        lmm = load_model(BUNDLED[name][0], dtype=dtype)
        lmm.source = name  # a fine-tune of it names the preset as its base, not this machine's path
        return lmm
    path = Path(name_or_path)
    weights = None if path.is_dir() else weights_repo(name)
    if weights is not None:  # before torch and transformers load: a repo the hub cannot give fails in a second
        from symdpo.models.hub import ensure_cached

        ensure_cached(*weights, model_name=name)

    from symdpo.models.flamingo.loading import load_flamingo_dir, load_flamingo_preset
    from symdpo.models.hf.io import FORMAT as HF_FORMAT
    from symdpo.models.hf.loading import load_hf, load_hf_dir

    if path.is_dir():
        if saved_format(path) == HF_FORMAT:
            return load_hf_dir(path, dtype=dtype, trust_remote_code=bool(trust_remote_code), load_base=load_model)
        if (path / "config.json").is_file():  # Flamingo's reader names a config of another format
            return load_flamingo_dir(path, dtype=dtype, load_base=load_model)
        raise UnknownModelError(f"{path}: a directory but not a symdpo model (no config.json); "
                                "give a preset name or a folder written by symdpo")
    if is_hf_name(name):
        return load_hf(name, dtype=dtype, trust_remote_code=trust_remote_code)
    if name in FLAMINGO_PRESETS:
        return load_flamingo_preset(name, dtype=dtype)
    hint = f" (and {name} is not a directory)" if any(s in name for s in "/\\.") or os.sep in name else ""
    raise UnknownModelError(f"unknown model {name!r}{hint}; presets: {', '.join(preset_names())}")
