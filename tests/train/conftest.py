"""Fixtures for the training tests: the tiny Flamingo with non-zero gates, easy-VQA images and pairs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)


def open_gates(model, value: float = 0.7) -> None:
    """Set every tanh gate non-zero (fresh gates are 0, which would hide the cross-attention path)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("attn_gate", "ff_gate")):
                p.fill_(value)


@pytest.fixture(scope="module")
def lmm():
    from symdpo.models.registry import load_model

    torch.manual_seed(0)
    m = load_model("tiny")
    open_gates(m.model)
    return m


@pytest.fixture(scope="module")
def images():
    """Return eight easy-VQA images (PIL)."""
    from symdpo.data.images import load_image
    from symdpo.data.sources import easyvqa_root

    root = easyvqa_root("train")
    return [load_image(root, f"images/{i}.png") for i in range(8)]


def build_pairs(out: Path, *, n: int, split: str = "train", seed: int = 0, k_max: int = 3) -> Path:
    """Write ``n`` SymDPO pairs from easy-VQA (with their manifest) to ``out``; return it."""
    from symdpo.data.build import build
    from symdpo.data.options import BuildOptions, SymbolOptions

    build(BuildOptions(source="easyvqa", split=split, out=out, max_records=n, seed=seed,
                       symbols=SymbolOptions(k_min=2, k_max=k_max)))
    return out


@pytest.fixture(scope="session")
def pairs(tmp_path_factory) -> Path:
    """Return a 32-pair easy-VQA SymDPO file."""
    return build_pairs(tmp_path_factory.mktemp("data") / "pairs.jsonl", n=32)


@pytest.fixture(scope="session")
def pair_builder():
    """Return `build_pairs` (fixtures are how test modules share helpers here: tests/ is not a package)."""
    return build_pairs
