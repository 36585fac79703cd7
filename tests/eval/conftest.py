"""Shared fixtures of the evaluation tests: one tiny random Flamingo for the whole session, a CLI runner on it."""

from __future__ import annotations

import warnings

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run torch on one thread: the tiny model's ops are too small to split, and on a shared 2-core machine
    intra-op threads fighting other processes made the same run 5-20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model():
    """Return the tiny preset (random weights seeded by its config, so every load is the same model)."""
    from symdpo.models.registry import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return load_model("tiny")


@pytest.fixture
def cli(monkeypatch, tiny_model):
    """Return a CliRunner whose `--model tiny` reuses the session's tiny model (other names load for real)."""
    from typer.testing import CliRunner

    import symdpo.models.registry as presets

    real = presets.load_model
    monkeypatch.setattr(presets, "load_model", lambda name, dtype=None: tiny_model if name == "tiny"
                        else real(name, dtype=dtype))
    return CliRunner()
