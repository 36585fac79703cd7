"""The reference implementation, open-flamingo==2.0.1 from PyPI, loaded by path.

Its package ``__init__`` imports open_clip (and so torchvision), which we do not install; its model code in
``open_flamingo/src`` needs only torch, einops and einops_exts, so we load those modules as a package of their
own. Nothing in it is patched here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn


def reference_src() -> Path:
    spec = importlib.util.find_spec("open_flamingo")  # locates without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open-flamingo==2.0.1 is not installed (make install puts it in with --no-deps)")
    return Path(list(spec.submodule_search_locations)[0]) / "src"


def load_reference():
    """Return the reference modules ``flamingo``, ``flamingo_lm`` and ``utils`` as a namespace."""
    name = "_openflamingo_reference"
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(reference_src())]
        sys.modules[name] = pkg
    return types.SimpleNamespace(
        flamingo=importlib.import_module(f"{name}.flamingo"),
        flamingo_lm=importlib.import_module(f"{name}.flamingo_lm"),
        helpers=importlib.import_module(f"{name}.helpers"),
        utils=importlib.import_module(f"{name}.utils"),
    )


class OpenClipLikeVisual(nn.Module):
    """Stands in for open_clip's ``model.visual`` with ``output_tokens=True``: returns (pooled, tokens).

    Tokens are the patch tokens before the final layer norm, as open_clip <= 2.22 returned them.
    """

    def __init__(self, clip_vision):
        super().__init__()
        self.clip = clip_vision

    def forward(self, pixel_values):
        h = self.clip(pixel_values=pixel_values).last_hidden_state
        return h[:, 0], h[:, 1:]


def build_reference(lm, vision, *, media_token_id, eoc_token_id, decoder_layers_attr_name, every):
    """Return the reference Flamingo around ``lm`` (modified in place, as OpenFlamingo's factory does)."""
    ref = load_reference()
    ref.utils.extend_instance(lm, ref.flamingo_lm.FlamingoLMMixin)
    lm.set_decoder_layers_attr_name(decoder_layers_attr_name)
    wrapper = types.SimpleNamespace(visual=OpenClipLikeVisual(vision))
    model = ref.flamingo.Flamingo(
        wrapper, lm, eoc_token_id, media_token_id, vis_dim=vision.config.hidden_size,
        cross_attn_every_n_layers=every,
    )
    with torch.no_grad():  # non-zero gates, so that the cross-attention matters in the comparison
        for block in lm.gated_cross_attn_layers:
            if block is not None:
                block.attn_gate.uniform_(0.5, 1.5)
                block.ff_gate.uniform_(0.5, 1.5)
    return model


def reference_checkpoint(model) -> dict[str, torch.Tensor]:
    """Return the reference model's state dict filtered as open_flamingo/train/train_utils.py saves it."""
    sd = model.state_dict()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    keep = {}
    for k, v in sd.items():
        if "vision_encoder" in k or "lang_encoder.old_decoder_blocks" in k or "lang_encoder.gated_cross_attn_layers" in k:
            continue
        if k in trainable or "embed" in k or "wte" in k or "gated_cross_attn_layer" in k or k.startswith("perceiver"):
            keep[k] = v
    return keep
