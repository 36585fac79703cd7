"""SymDPO on easy-VQA symbol pairs teaches the tiny model to pick the context's symbol.

Compared against: the model's own pre-training values — held-out symbol-choice accuracy (share of held-out
test-split pairs whose chosen answer gets the higher log-prob) before vs after, and rewards/accuracies
against the 0.5 of an untrained policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from symdpo.config import load_config
from symdpo.train.config import TrainConfig
from symdpo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[2]


def held_out_logps(lmm, path: Path) -> tuple:
    """Return (chosen, rejected) per-token mean log-probs of every pair in ``path`` under ``lmm``."""
    import torch

    from symdpo.train.data import RecordDataset

    ds = RecordDataset(path, end_of_chunk=lmm.end_of_chunk)
    lmm.model.eval()
    cs, rs = [], []
    with torch.no_grad():
        for start in range(0, len(ds), 16):
            ex = [ds[i] for i in range(start, min(start + 16, len(ds)))]
            c, r, nc, nr = lmm.pair_logps([e.context for e in ex], [e.chosen for e in ex], [e.rejected for e in ex])
            cs.append(c / nc)  # per token: symbols are longer than words, a sum would favour the short answer
            rs.append(r / nr)
    return torch.cat(cs), torch.cat(rs)


@pytest.mark.slow
@pytest.mark.ci  # about 5 minutes of training: make test-ci (the demo's tests train SymDPO in make test)
def test_symdpo_learns_symbols(tmp_path, pair_builder):
    from symdpo.models.registry import load_model
    from symdpo.train.dpo import train_dpo

    train = pair_builder(tmp_path / "train.jsonl", n=1024, k_max=4)
    held_out = pair_builder(tmp_path / "test.jsonl", n=128, split="test", seed=1, k_max=4)
    base_c, base_r = held_out_logps(load_model("tiny"), held_out)
    cfg = load_config(ROOT / "configs/tiny_dpo.yaml", [
        f"data.path={train}", f"output_dir={tmp_path / 'run'}", "logging.progress=false",
        "logging.tensorboard=false", "optim.epochs=3"], TrainConfig)
    result = train_dpo(cfg)
    new_c, new_r = held_out_logps(load_model(result["final"]), held_out)
    before, after = (base_c > base_r).float().mean().item(), (new_c > new_r).float().mean().item()
    reward_acc = ((new_c - base_c) > (new_r - base_r)).float().mean().item()  # held-out rewards/accuracies
    metrics = read_metrics(tmp_path / "run/metrics.jsonl")
    last = metrics[-8:]
    train_acc = sum(m["rewards/accuracies"] for m in last) / len(last)
    print(f"\nsteps {len(metrics)}; rewards/accuracies (mean of last {len(last)} steps) {train_acc:.3f}; "
          f"held-out symbol-choice accuracy {before:.3f} -> {after:.3f}; held-out reward accuracy {reward_acc:.3f}")
    assert train_acc > 0.65
    assert reward_acc > 0.65
    assert after > before + 0.05
