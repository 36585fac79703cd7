"""The model seam: every family answers the same protocol, decides what trains, and nothing reaches past it.

Compared against: the parameter names of the transformers models themselves (IDEFICS' ``gated_cross_attn_layers``
and ``alpha_*`` gates, Qwen2-VL's ``visual.merger``, Idefics3's ``connector``) and Python's own ``ast`` reading
of our sources for the import graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from symdpo.models.interface import InterleavedModel, TrainingSpec
from symdpo.models.policies import POLICIES
from symdpo.models.registry import load_model, presets

SRC = Path(__file__).resolve().parents[2] / "src" / "symdpo"
TINY = ["tiny", "tiny-scratch", "tiny-idefics", "tiny-idefics2", "tiny-idefics3", "tiny-smolvlm", "tiny-qwen2-vl",
        "tiny-qwen2.5-vl", "tiny-qwen3-vl", "tiny-gemma3", "tiny-llava-onevision"]
HF_TINY = ["tiny-idefics", "tiny-idefics2", "tiny-idefics3", "tiny-qwen2-vl", "tiny-qwen3-vl", "tiny-gemma3",
           "tiny-llava-onevision"]


# ---- the import graph -------------------------------------------------------------------------------------
def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Return every symdpo module ``path`` imports, at the top or inside functions (relative imports resolved)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("symdpo")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("symdpo"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    return {m: {i for i in imports_of(p) if i in files and i != m} for m, p in files.items()}


# bottom to top; the layers of one rank are peers, which never import each other
LAYERS: list[dict[str, tuple[str, ...]]] = [
    {"core": ("symdpo.errors", "symdpo.boundary", "symdpo.cli_defaults", "symdpo.atomic", "symdpo.config",
              "symdpo.distributed", "symdpo.pixels", "symdpo.pseudowords")},
    {"models": ("symdpo.models",)},
    {"data": ("symdpo.data",)},
    {"train": ("symdpo.train",), "eval": ("symdpo.eval",)},
    {"infer": ("symdpo.infer",)},
    {"demo": ("symdpo.demo",), "app": ("symdpo.app",)},
    {"cli": ("symdpo.cli", "symdpo.__main__", "symdpo")},
]


def layer_of(module: str) -> tuple[int, str]:
    """Return the (rank, layer) ``module`` belongs to; a module in no layer fails the test (place it)."""
    for rank, layers in enumerate(LAYERS):
        for name, roots in layers.items():
            if any(module == r or (r != "symdpo" and module.startswith(r + ".")) for r in roots):
                return rank, name
    pytest.fail(f"{module} is in no layer: add it to LAYERS in tests/models/test_seam.py")


def test_no_import_cycle_in_symdpo():
    """No module of src/symdpo imports itself back through others (imports inside functions count)."""
    g = graph()
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d] if d in stack else [m, d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])


def test_layers_import_downward_only():
    """Layers, bottom to top: core (errors with the one SymdpoError, the CLI's error boundary and option defaults, atomic writes,
    config, distributed, pixels, pseudowords) < models < data < train | eval (peers) < infer < demo | app
    (peers) < cli (with __main__ and the package's own ``symdpo.load``). A module imports its own layer and
    those below, never one above nor a peer (imports inside functions count)."""
    upward = []
    for m, deps in graph().items():
        rank, layer = layer_of(m)
        for d in deps:
            d_rank, d_layer = layer_of(d)
            if d_rank > rank or (d_rank == rank and d_layer != layer):
                upward.append(f"{m} ({layer}) -> {d} ({d_layer})")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_pipeline_stages_never_import_a_family():
    stages = ("symdpo.train", "symdpo.eval", "symdpo.data", "symdpo.infer", "symdpo.demo")
    bad = [(m, i) for m, deps in graph().items() if m.startswith(stages) for i in deps
           if i.startswith(("symdpo.models.flamingo", "symdpo.models.hf"))]
    assert not bad


# ---- the protocol, per family ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny", *HF_TINY])
def test_every_family_implements_the_protocol(name):
    lmm = load_model(name)
    assert isinstance(lmm, InterleavedModel)
    for kind in ("vqa", "caption"):
        for style in ("native", "openflamingo"):
            fmt = lmm.prompt_format(kind, style)
            assert "{image}" in fmt.query and "{end}" in fmt.demo
    with pytest.raises(ValueError, match="unknown prompt style"):
        lmm.prompt_format("vqa", "chatml")
    from PIL import Image

    red, blue = Image.new("RGB", (40, 40), (220, 30, 30)), Image.new("RGB", (40, 40), (30, 30, 220))
    feats = lmm.image_features([red, blue, red])
    assert feats.ndim == 3 and feats.shape[0] == 3 and torch.isfinite(feats).all()
    assert torch.allclose(feats[0], feats[2]) and not torch.allclose(feats[0], feats[1])


def _groups(name: str, policy: str | None, **spec):
    lmm = load_model(name)
    groups = lmm.prepare_training(TrainingSpec(policy=policy, weight_decay=0.1, **spec))
    decay, no_decay = groups
    assert decay.weight_decay == 0.1 and no_decay.weight_decay == 0.0
    trainable = {n for n, p in lmm.module.named_parameters() if p.requires_grad}
    assert set(decay.names) | set(no_decay.names) == trainable and not set(decay.names) & set(no_decay.names)
    return lmm, decay.names, no_decay.names


def test_flamingo_groups_per_policy():
    _, decay, rest = _groups("tiny", "openflamingo")
    assert decay and all(n.startswith("xattn.") for n in decay)
    assert {n.split(".")[0] for n in rest} == {"perceiver", "new_rows"}  # no LM weight, no embedding matrix
    _, decay, rest = _groups("tiny", "connector")
    assert {n.split(".")[0] for n in decay + rest} == {"xattn", "perceiver"}
    _, decay, rest = _groups("tiny", "full")
    assert not any(n.startswith("vision.") for n in rest) and any(n.startswith("lm.") for n in rest)
    assert all(n.startswith("xattn.") for n in decay)
    _, decay, rest = _groups("tiny", "lora")  # adapters only, as in every family (policies.POLICIES)
    assert any("lora_" in n for n in rest) and all("lora_" in n for n in decay + rest)


def test_idefics_openflamingo_policy_is_the_papers_setup():
    """IDEFICS-9B in the paper: perceiver resampler and gated cross-attention train, decay on the latter only."""
    lmm, decay, rest = _groups("tiny-idefics", None, gate_init=0.25)
    assert decay and all(n.startswith("model.gated_cross_attn_layers.") for n in decay)
    assert rest and all(n.startswith("model.perceiver_resampler.") for n in rest)
    gates = [p for n, p in lmm.module.named_parameters() if n.rpartition(".")[2] in ("alpha_cross_attn", "alpha_dense")]
    assert gates and all(torch.all(g == 0.25) for g in gates)
    assert not any("embed_tokens" in n for n in decay + rest)  # no embedding row: the tiny model adds no tokens


@pytest.mark.parametrize(("name", "connector"), [("tiny-idefics2", "model.connector."),
                                                 ("tiny-idefics3", "model.connector."),
                                                 ("tiny-qwen2-vl", "model.visual.merger."),
                                                 ("tiny-gemma3", "model.multi_modal_projector."),
                                                 ("tiny-llava-onevision", "model.multi_modal_projector."),
                                                 ("tiny-qwen3-vl", ("model.visual.merger.",
                                                                    "model.visual.deepstack_merger_list."))])
def test_projector_families_groups(name, connector):
    _, decay, rest = _groups(name, "connector")
    assert decay and all(n.startswith(connector) for n in decay + rest)
    assert not any(n.endswith("bias") or "norm" in n for n in decay)  # matrices (and latents) only
    _, decay, rest = _groups(name, None)  # the default: LoRA on the language model only
    assert decay + rest and all("lora_" in n for n in decay + rest)
    assert not any("visual" in n or "vision" in n for n in decay + rest)
    _, decay, rest = _groups(name, "full")
    assert not any(n.startswith(("model.visual.blocks", "model.vision_model")) for n in decay + rest)
    assert any(n.startswith(connector) for n in decay + rest) and any("embed_tokens" in n for n in decay + rest)


def test_gate_init_on_a_family_without_gates_is_refused():
    with pytest.raises(ValueError, match="model.gate_init: the qwen2_vl family has no cross-attention gates"):
        load_model("tiny-qwen2-vl").prepare_training(TrainingSpec(policy="connector", gate_init=0.5))


def test_policies_are_the_config_choices():
    from typing import get_args

    from symdpo.train.config import ModelSection

    choices = next(a for a in get_args(ModelSection.model_fields["policy"].annotation) if a is not type(None))
    assert set(get_args(choices)) == set(POLICIES)


# ---- the CLI over every family ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", TINY)
def test_model_info_on_every_tiny_preset(name):
    from symdpo.models.cli import app

    res = CliRunner().invoke(app, ["info", name])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Traceback" not in res.output and "parameters" in res.output and "default policy" in res.output
    # every policy with its one meaning, the family's default marked
    assert "lora" in res.output and "LoRA adapters on the LM's attention projections only" in res.output
    assert "[default]" in res.output


@pytest.mark.parametrize("name", ["tiny", *HF_TINY])
def test_model_info_counts_what_the_default_policy_trains(name):
    """info().trainable equals the parameters the default policy hands the optimiser (LoRA: peft's adapters)."""
    lmm = load_model(name)
    expected = lmm.info().trainable
    groups = lmm.prepare_training(TrainingSpec())
    assert expected == sum(p.numel() for g in groups for p in g.params) > 0


def test_model_presets_lists_every_family():
    from symdpo.models.cli import app

    res = CliRunner().invoke(app, ["presets"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    families = {p.family for p in presets()}
    assert families >= {"flamingo", "idefics", "idefics2", "idefics3", "qwen2_vl", "qwen3_vl", "gemma3"}
    for p in presets():
        assert p.name in res.output


def test_a_family_missing_a_hook_cannot_be_instantiated():
    """Every hook training relies on is abstract in the contract: a family without one fails at once."""
    from symdpo.models.flamingo.lmm import FlamingoLMM
    from symdpo.models.interface import TrainableModel

    assert {"_set_module", "_frozen_eval", "_fold_trained", "shard_units", "prepare_training",
            "answer_logps", "generate", "prompt_format"} <= TrainableModel.__abstractmethods__
    incomplete = type("Incomplete", (FlamingoLMM,), {"_set_module": TrainableModel._set_module})
    with pytest.raises(TypeError, match="_set_module"):
        incomplete(None, None)
