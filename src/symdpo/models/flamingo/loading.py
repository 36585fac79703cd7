"""Loading a Flamingo: a preset (with OpenFlamingo's released checkpoint when it has one) or a saved folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_file

from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo, hub_repos, preset_config
from symdpo.models.flamingo.checkpoints import load_openflamingo_checkpoint
from symdpo.models.flamingo.io import load_strict, read_config
from symdpo.models.flamingo.lmm import FlamingoLMM
from symdpo.models.flamingo.presets import CHECKPOINT_FILE, PRESETS
from symdpo.models.hub import hub_access

_NOT_CONFIG = ("architectures", "transformers_version", "dtype", "torch_dtype")


def load_flamingo_preset(name: str, *, dtype: str | None = None) -> FlamingoLMM:
    """Return the Flamingo of preset ``name``, with its released OpenFlamingo checkpoint when it has one."""
    preset = PRESETS[name]
    cfg = preset_config(preset.name)
    if dtype:
        cfg = cfg.model_copy(update={"dtype": dtype})
    # every hub repository is checked before anything loads: the checkpoint first, then the backbones
    repos = [(preset.checkpoint, (CHECKPOINT_FILE,))] if preset.checkpoint else []
    with hub_access(repos + [(r, None) for r in hub_repos(cfg)], model_name=name):
        lmm = build_flamingo(cfg, name=name)
        if preset.checkpoint:
            from huggingface_hub import hf_hub_download

            load_openflamingo_checkpoint(lmm.model, hf_hub_download(preset.checkpoint, CHECKPOINT_FILE),
                                         lm_format=cfg.lm_format)
    lmm.source = preset.name
    return lmm


def load_flamingo_dir(path: str | Path, *, dtype: str | None = None,
                      load_base: Callable[..., FlamingoLMM] | None = None) -> FlamingoLMM:
    """Return the FlamingoLMM saved in directory ``path``; a fine-tune's base is loaded with ``load_base``."""
    path = Path(path)
    meta = read_config(path)
    if meta.get("base"):
        if load_base is None:
            raise ValueError(f"{path} is a fine-tune over {meta['base']}: load it through symdpo.models.registry")
        lmm = load_base(meta["base"], dtype=dtype)
        load_strict(lmm.model, load_file(path / "trainable.safetensors"), path / "trainable.safetensors", partial=True)
        lmm.source = str(path)
        return lmm
    fields = dict(meta["flamingo"])
    lm_config = {k: v for k, v in meta["lm_config"].items() if k not in _NOT_CONFIG}
    vision_config = {k: v for k, v in meta["vision_config"].items() if k not in _NOT_CONFIG}
    fields.update(lm=lm_config, vision=vision_config, tokenizer=str(path / "tokenizer"), lm_gguf_file=None)
    fields["lm_format"] = "mosaicgpt" if fields.get("lm_format") == "mosaicgpt" else "hf"
    if dtype:
        fields["dtype"] = dtype
    lmm = build_flamingo(FlamingoConfig(**fields))
    load_strict(lmm.model, load_file(path / "model.safetensors"), path / "model.safetensors", partial=False)
    lmm.source = str(path)
    return lmm
