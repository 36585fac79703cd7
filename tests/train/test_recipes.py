"""The recipes end to end on the tiny model: reference modes, trainable set, SFT, LoRA, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tolerances import approx_metric

from symdpo.config import load_config
from symdpo.train.config import TrainConfig
from symdpo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[2]


def tiny_cfg(data: Path, out: Path, *overrides: str) -> TrainConfig:
    base = [f"data.path={data}", f"output_dir={out}", "data.micro_batch_size=2", "data.global_batch_size=4",
            "logging.progress=false", "logging.tensorboard=false", "logging.plot=false", "optim.max_steps=2",
            "checkpoint.every_steps=100"]
    return load_config(ROOT / "configs/tiny_dpo.yaml", base + list(overrides), TrainConfig)


def test_precomputed_and_live_reference_agree(pairs, tmp_path):
    """Same loss and rewards at step 0 (and after an update) whether the reference is precomputed or live."""
    from symdpo.train.dpo import train_dpo

    runs = {}
    for mode, share in [("precomputed", True), ("live", True), ("live", False)]:
        out = tmp_path / f"{mode}-{share}"
        train_dpo(tiny_cfg(pairs, out, f"dpo.reference={mode}", f"dpo.share_frozen={share}"))
        runs[(mode, share)] = read_metrics(out / "metrics.jsonl")
    stored = list(pairs.parent.glob(f"{pairs.name}.reflogps-*.safetensors"))
    assert len(stored) == 1  # stored beside the data, computed once
    first = runs[("precomputed", True)]
    assert abs(first[0]["rewards/chosen"]) < 1e-5 and abs(first[0]["rewards/rejected"]) < 1e-5
    for other in runs.values():
        for a, b in zip(first, other, strict=True):
            for key in ("loss", "loss/dpo", "rewards/chosen", "rewards/rejected", "rewards/margins"):
                assert a[key] == approx_metric(key, b[key], rel=1e-6), (key, a["step"])


@pytest.mark.parametrize("name", ["tiny-idefics", "tiny-idefics3", "tiny-qwen2-vl"])
def test_precomputed_and_live_reference_agree_for_hf_families(pairs, tmp_path, name):
    """Every family: the stored reference log-probs and a live frozen copy give the same first steps."""
    from symdpo.train.dpo import train_dpo

    runs = {}
    for mode in ("precomputed", "live"):
        out = tmp_path / mode
        train_dpo(tiny_cfg(pairs, out, f"model.name={name}", f"dpo.reference={mode}", "optim.lr=1e-3"))
        runs[mode] = read_metrics(out / "metrics.jsonl")
    first = runs["precomputed"]
    assert abs(first[0]["rewards/chosen"]) < 1e-5 and abs(first[0]["rewards/rejected"]) < 1e-5
    for a, b in zip(first, runs["live"], strict=True):
        for key in ("loss", "loss/dpo", "rewards/chosen", "rewards/rejected"):
            assert a[key] == approx_metric(key, b[key]), (key, a["step"])


def test_trainable_set_and_embedding_mask(pairs, tmp_path):
    """Only perceiver, cross-attention and the new tokens' embedding rows change; decay on xattn only."""
    from symdpo.models.flamingo.training import new_token_rows
    from symdpo.models.interface import TrainingSpec
    from symdpo.models.registry import load_model
    from symdpo.train.dpo import train_dpo

    out = tmp_path / "run"
    train_dpo(tiny_cfg(pairs, out, "optim.lr=1e-2", "optim.warmup_ratio=0"))
    base = load_model("tiny")
    tuned = load_file(out / "final/trainable.safetensors")
    before = dict(base.model.named_parameters())
    emb_name = next(n for n, p in before.items() if p is base.model.lm.get_input_embeddings().weight)
    rows = new_token_rows(base.tokenizer)
    delta = (tuned[emb_name] - before[emb_name].detach()).abs().sum(1)
    assert (delta[rows[:2]] > 0).all()  # <|endofchunk|> and <image> are read; <PAD> is never attended
    others = torch.ones_like(delta, dtype=torch.bool)
    others[rows] = False
    assert torch.equal(delta[others], torch.zeros_like(delta[others]))
    assert any(not torch.equal(v, before[k]) for k, v in tuned.items() if k.startswith("xattn."))
    assert any(not torch.equal(v, before[k]) for k, v in tuned.items() if k.startswith("perceiver."))
    assert set(tuned) == {k for k in before if k.startswith(("xattn.", "perceiver.")) or k == emb_name}
    decay, no_decay = base.prepare_training(TrainingSpec(weight_decay=0.1))
    assert decay.weight_decay == 0.1 and decay.names and all(n.startswith("xattn.") for n in decay.names)
    assert no_decay.weight_decay == 0.0 and not any(n.startswith("xattn.") for n in no_decay.names)


def test_final_model_loads_back(pairs, tmp_path):
    from symdpo.models.registry import load_model
    from symdpo.train.sft import train_sft

    out = tmp_path / "sft"
    result = train_sft(load_config(ROOT / "configs/tiny_sft.yaml", [
        f"data.path={pairs}", f"output_dir={out}", "data.micro_batch_size=2", "data.global_batch_size=4",
        "optim.max_steps=2", "logging.progress=false", "logging.tensorboard=true"], TrainConfig))
    assert result["final"] == out / "final" and (out / "curves.png").is_file()
    assert any((out / "tensorboard").iterdir())
    metrics = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2] and metrics[0]["loss"] > 0
    reloaded = load_model(out / "final")
    saved = load_file(out / "final/trainable.safetensors")
    for name, p in reloaded.model.named_parameters():
        if name in saved:
            assert torch.equal(p.detach(), saved[name])


def test_lora_run_saves_merged_model(pairs, tmp_path):
    from symdpo.models.registry import load_model
    from symdpo.train.dpo import train_dpo

    out = tmp_path / "lora"
    train_dpo(tiny_cfg(pairs, out, "lora.enabled=true", "optim.lr=1e-2", "dpo.reference=live"))
    merged = load_model(out / "final")
    base = load_model("tiny")
    q = "lm.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(merged.model.named_parameters())[q], dict(base.model.named_parameters())[q])
    assert not any("lora_" in n for n, _ in merged.model.named_parameters())


def test_every_shipped_config_loads():
    """Each YAML under configs/ validates (train recipes) or parses (accelerate), and starts with its launch line."""
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(files) >= 7
    for f in files:
        first = f.read_text().splitlines()[0]
        assert first.startswith("# ") and ("symdpo" in first or "accelerate launch" in first), f
        if f.parent.name == "accelerate":
            assert yaml.safe_load(f.read_text())["distributed_type"]
        else:
            load_config(f, [], TrainConfig)


def test_config_errors_name_the_key(tmp_path):
    from symdpo.config import ConfigError

    with pytest.raises(ConfigError, match=r"optim.lrr: unknown key"):
        load_config(ROOT / "configs/tiny_dpo.yaml", ["optim.lrr=1"], TrainConfig)
    with pytest.raises(ConfigError, match=r"dpo.beta"):
        load_config(ROOT / "configs/tiny_dpo.yaml", ["dpo.beta=abc"], TrainConfig)


def test_train_xattn_false_trains_the_bare_lm(pairs, tmp_path):
    """Stage 1 of the demo's pretraining: the LM trains, perceiver and cross-attention stay frozen at gate 0."""
    from symdpo.train.setup import setup

    s = setup(tiny_cfg(pairs, tmp_path / "run", "model.name=tiny-scratch", "model.train_lm=true",
                       "model.train_xattn=false", "model.gate_init=0.0"))
    trainable = {id(p) for g in s.groups for p in g.params}
    named = dict(s.lmm.model.named_parameters())
    assert not any(id(p) in trainable for n, p in named.items() if n.startswith(("perceiver.", "xattn.", "vision.")))
    assert all(id(p) in trainable for n, p in named.items() if n.startswith("lm."))
    assert all(p.item() == 0.0 for n, p in named.items() if n.endswith("_gate"))
    lm = s.lmm.model.lm
    assert lm.get_output_embeddings().weight is lm.get_input_embeddings().weight  # tiny-scratch ties them


def test_eval_split_is_held_out_and_scored(pairs, tmp_path):
    """data.eval_fraction holds records out of training; eval/ metrics are the trained model's on exactly them.

    Compared against: the held-out log-probs recomputed from the saved final model (a separate load and pass).
    """
    from symdpo.models.registry import load_model
    from symdpo.train.dpo import train_dpo
    from symdpo.train.reference import pair_logps
    from symdpo.train.setup import setup

    cfg = tiny_cfg(pairs, tmp_path / "run", "data.eval_fraction=0.25", "logging.eval_every_steps=1")
    s = setup(cfg)
    held, trained = {r.id for r in s.eval_dataset.records}, {r.id for r in s.dataset.records}
    assert len(held) == 8 and len(trained) == 24 and not held & trained
    train_dpo(cfg)
    rows = read_metrics(tmp_path / "run/metrics.jsonl")
    assert [r["step"] for r in rows if "eval/loss" in r] == [1, 2]
    final = load_model(tmp_path / "run/final")
    final.train(False)
    chosen, rejected = pair_logps(final, s.eval_dataset, list(range(8)), batch_size=4, shared_prefix=True)
    assert rows[-1]["eval/logps/chosen"] == pytest.approx(chosen.mean().item(), rel=1e-5)  # log-probs: relative
    assert rows[-1]["eval/logps/rejected"] == pytest.approx(rejected.mean().item(), rel=1e-5)


def test_packed_run_follows_the_unpacked_run(pairs, tmp_path):
    """`data.max_tokens_per_batch` changes the layout only: the same losses and rewards step after step as one
    pair per row (compared with the unpacked run, itself equal to naive scoring), live reference included."""
    from symdpo.train.dpo import train_dpo

    runs = {}
    for packed in (None, 1024):
        out = tmp_path / f"packed-{packed}"
        extra = [f"data.max_tokens_per_batch={packed}"] if packed else []
        train_dpo(tiny_cfg(pairs, out, "dpo.reference=live", "optim.lr=1e-3", "optim.max_steps=3", *extra))
        runs[packed] = read_metrics(out / "metrics.jsonl")
    for a, b in zip(runs[None], runs[1024], strict=True):
        for key in ("loss", "loss/dpo", "loss/sft", "rewards/chosen", "rewards/rejected"):
            assert a[key] == approx_metric(key, b[key]), (key, a["step"])
    assert runs[None][-1]["rewards/margins"] != 0  # the steps did update the model


def test_packing_needs_the_shared_prefix(pairs, tmp_path):
    with pytest.raises(ValueError, match="max_tokens_per_batch packs shared-prefix trees"):
        tiny_cfg(pairs, tmp_path, "data.max_tokens_per_batch=512", "dpo.shared_prefix=false")


@pytest.mark.parametrize("name", ["tiny", "tiny-smolvlm", "tiny-qwen2-vl", "tiny-llava-onevision"])
def test_loss_normaliser_counts_the_tokens_scoring_scores(pairs, tmp_path, name):
    """The SFT term's normaliser, counted before the step from text alone, equals the answer tokens the scorer
    then scores after each context: compared with the counts of the model's own pair scoring, in the family's
    native format (a chat cue's space moves to the answer)."""
    from symdpo.train.dpo import DPOObjective
    from symdpo.train.setup import setup

    cfg = tiny_cfg(pairs, tmp_path / "run", f"model.name={name}", "data.prompt_style=native")
    s = setup(cfg)
    indices = list(range(6))
    examples = [s.dataset[i] for i in indices]
    with torch.no_grad():
        _, _, chosen_tokens, _ = s.lmm.pair_logps([e.context for e in examples], [e.chosen for e in examples],
                                                  [e.rejected for e in examples])
    totals = DPOObjective(cfg, s).denominators(indices)
    assert totals["tokens"] == int(chosen_tokens.sum())
