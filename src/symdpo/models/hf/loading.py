"""Loading an HF-native model: a tiny offline preset, a hub preset or ``hf:<id>``, or a saved folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_file

from symdpo.models.errors import CheckpointError
from symdpo.models.hf.adapter import HFInterleavedLMM
from symdpo.models.hf.families import FAMILIES, MODEL_TYPES, tiny_model
from symdpo.models.hf.presets import HF_PRESETS, HUB_PREFIX, trust_remote_code_allowed
from symdpo.models.hf.processors import load_processor, processor_from_parts
from symdpo.models.hub import hub_access
from symdpo.models.prompts import PromptFormat


def load_hf(name: str, *, dtype: str | None = None, trust_remote_code: bool | None = None) -> HFInterleavedLMM:
    """Return the model of an HF preset or ``hf:<hub id>`` (remote code off unless allowed)."""
    import torch
    import transformers as tf

    remote = trust_remote_code_allowed(trust_remote_code)
    preset = HF_PRESETS.get(name)
    if preset is not None and preset.repo is None:
        hf, processor = tiny_model(preset.family, variant=preset.tiny_variant)
        if dtype:
            hf = hf.to(getattr(torch, dtype))
        family = FAMILIES[preset.family]
        return HFInterleavedLMM(hf, processor, family=family, prompts=family.prompts[preset.prompts],
                                default_prompt_style=family.prompt_style(preset.prompts), source=name)
    repo = preset.repo if preset else name[len(HUB_PREFIX):]
    with hub_access([(repo, None)], model_name=name):
        config = tf.AutoConfig.from_pretrained(repo, trust_remote_code=remote)
        if config.model_type not in MODEL_TYPES:
            raise ValueError(f"{repo}: model type {config.model_type!r} is not a supported family "
                             f"({', '.join(sorted(MODEL_TYPES))})")
        family = FAMILIES[MODEL_TYPES[config.model_type]]
        # the config's own class when the family lists it (SmolVLM, Qwen2.5-VL), else the family's first
        own = type(config).__name__.replace("Config", "ForConditionalGeneration")
        cls = getattr(tf, own if own in family.model_classes else family.model_classes[0])
        kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
        hf = cls.from_pretrained(repo, trust_remote_code=remote, **kwargs).eval()
        processor = load_processor(family, repo, config, trust_remote_code=remote)
    # a hub id's format: its model type's own when it has one (smolvlm), else its family's
    prompts = preset.prompts if preset else (config.model_type if config.model_type in family.prompts else family.name)
    return HFInterleavedLMM(hf, processor, family=family, prompts=family.prompts[prompts],
                            default_prompt_style=family.prompt_style(prompts),
                            source=name)


def load_hf_dir(path: str | Path, *, dtype: str | None = None, trust_remote_code: bool = False,
                load_base: Callable[..., HFInterleavedLMM] | None = None) -> HFInterleavedLMM:
    """Return the model saved in directory ``path``; a fine-tune's base is loaded with ``load_base``."""
    import torch
    import transformers as tf

    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    if meta.get("base"):
        if load_base is None:
            raise ValueError(f"{path} is a fine-tune over {meta['base']}: load it through symdpo.models.registry")
        lmm = load_base(meta["base"], dtype=dtype)
        source = path / "trainable.safetensors"
        # a save in the earlier format names parameters under an "hf." wrapper prefix: both are read
        state = {k.removeprefix("hf."): v for k, v in load_file(source).items()}
        params = dict(lmm.hf.named_parameters())
        unknown = [k for k in state if k not in params or params[k].shape != state[k].shape]
        if unknown:
            raise CheckpointError(f"{source} does not fit its base {meta['base']}: {unknown[:5]}")
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v)
        lmm.source = str(path)
        return lmm
    family = FAMILIES[meta["family"]]
    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
    hf = getattr(tf, meta["model_class"]).from_pretrained(path / "hf", trust_remote_code=trust_remote_code, **kwargs)
    parts = json.loads((path / "processor_parts.json").read_text())
    processor = processor_from_parts(family, path / "hf", **{k: v for k, v in parts.items() if k != "class"})
    prompts = {k: PromptFormat(**f) for k, f in meta.get("prompts", {}).items()} or None
    return HFInterleavedLMM(hf.eval(), processor, family=family, end_of_chunk=meta["end_of_chunk"],
                            max_length=meta["max_length"], prompts=prompts,
                            default_prompt_style=meta.get("prompt_style", "native"), source=str(path))
