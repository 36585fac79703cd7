"""`symdpo model memory`: parameter counts from a meta-device build, and the model states per GPU.

Compared against: the materialised model's own parameters (counted by torch, trainable set by the family's
default policy) and, for the arithmetic, the bytes of the tensors an AdamW step keeps (torch's own state).
"""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from symdpo.models.interface import TrainingSpec
from symdpo.models.memory import count, fewest_gpus, meta_counts, states_gib
from symdpo.models.registry import load_model


def test_meta_counts_equal_the_materialised_model():
    for name in ("tiny", "tiny-qwen2-vl"):
        lmm = load_model(name)
        lmm.prepare_training(TrainingSpec())
        real = count(lmm)
        assert meta_counts(name) == real and real.trainable > 0
    info = load_model("tiny").info()  # `model info`'s trainable count; training adds the new-token rows as their
    c = meta_counts("tiny")  # own parameter (3 rows of the embedding width) beside the frozen matrix
    assert c.trainable == info.trainable and c.total == info.parameters + 3 * 64


def test_one_gpu_states_are_the_bytes_adamw_keeps():
    """One GPU, any engine: bf16 frozen weights + fp32 trainable weights, gradients and AdamW's two states."""
    lmm = load_model("tiny")
    lmm.prepare_training(TrainingSpec())
    trainable = [p for p in lmm.module.parameters() if p.requires_grad]
    frozen = [p.detach().to(torch.bfloat16) for p in lmm.module.parameters() if not p.requires_grad]
    opt = torch.optim.AdamW(trainable)
    for p in trainable:
        p.grad = torch.zeros_like(p)
    opt.step()
    held = sum(t.numel() * t.element_size() for t in frozen + trainable + [p.grad for p in trainable])
    held += sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if v.dim())
    for engine in ("ddp", "zero2", "fsdp"):
        assert states_gib(count(lmm), 1, engine) * 2**30 == held


def test_sharding_divides_what_it_shards():
    c = meta_counts("openflamingo-3b")  # the release's architecture, no download
    assert 2.5e9 < c.total < 2.8e9 and 0.9e9 < c.trainable < 1.0e9
    assert states_gib(c, 8, "ddp") == states_gib(c, 1, "ddp")
    assert states_gib(c, 8, "zero2") < states_gib(c, 2, "zero2") < states_gib(c, 1, "zero2")
    assert states_gib(c, 8, "fsdp") < states_gib(c, 8, "zero2")
    assert fewest_gpus(c, "fsdp", 8.0) == 4 and fewest_gpus(c, "ddp", 8.0) is None


def test_cli_prints_the_table_and_names_a_bad_option():
    from symdpo.cli import app

    r = CliRunner().invoke(app, ["model", "memory", "openflamingo-9b", "--gpus", "1,8"])
    assert r.exit_code == 0, r.output
    assert "FSDP / ZeRO-3" in r.output and "fewest 24 GiB GPUs" in r.output
    r = CliRunner().invoke(app, ["model", "memory", "tiny", "--gpus", "two"])
    assert r.exit_code != 0 and "--gpus" in r.output and "Traceback" not in r.output


def test_the_readme_table_is_the_calculation():
    """The README's table of presets and GPUs is what the calculation gives today (it cannot drift)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in ("openflamingo-3b", "openflamingo-4b", "openflamingo-9b"):
        row = re.search(rf"^\| {name}(?:\(-instruct\))? \|(.*)$", readme, re.M).group(1)
        c = meta_counts(name)
        fsdp = " / ".join(f"{states_gib(c, n, 'fsdp'):.1f}" for n in (2, 4, 8))
        want = (f" {c.total / 1e9:.2f} B ({c.trainable / 1e9:.2f} B) | {states_gib(c, 1, 'ddp'):.1f} | "
                f"{states_gib(c, 8, 'zero2'):.1f} | {fsdp} | {fewest_gpus(c, 'fsdp', 24)} |")
        assert row == want, (name, row, want)
