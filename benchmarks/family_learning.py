"""Does SymDPO training move every family the same way? rewards/accuracies of a short CPU run per family.

    .venv/bin/python benchmarks/family_learning.py                 # ~5 min on 2 CPU cores
    .venv/bin/python benchmarks/family_learning.py --steps 300 --families tiny-qwen2-vl
    .venv/bin/python benchmarks/family_learning.py --steps 2 --records 16     # a smoke run, ~10 s (every family)

Each tiny offline preset (random weights) is trained with `symdpo train dpo` (configs/tiny_dpo.yaml, its
family's default policy unless ``--policy``) on the same easy-VQA SymDPO pairs, and the share of pairs whose chosen answer gains
more reward than the rejected one (TRL's ``rewards/accuracies``) is read from its metrics: the first steps'
and the last ones'. A family whose seam trained nothing, or the wrong thing, stays near its start.
The pairs, metrics and checkpoints go to a temporary folder that is removed at the end (``--keep DIR``: there,
kept).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from common import ROOT, timed

FAMILIES = ["tiny", "tiny-idefics", "tiny-idefics2", "tiny-idefics3", "tiny-qwen2-vl", "tiny-qwen3-vl", "tiny-gemma3"]


def run(name: str, pairs: Path, out: Path, steps: int, lr: float, policy: str | None) -> list[dict]:
    """Train ``name`` for ``steps`` DPO steps on ``pairs``; return its metrics rows."""
    from symdpo.config import load_config
    from symdpo.train.config import TrainConfig
    from symdpo.train.dpo import train_dpo
    from symdpo.train.tracking import read_metrics

    cfg = load_config(ROOT / "configs/tiny_dpo.yaml", [
        f"model.name={name}", f"data.path={pairs}", f"output_dir={out}", f"optim.max_steps={steps}",
        f"optim.lr={lr}", "optim.epochs=100", "data.micro_batch_size=16", "data.global_batch_size=16",
        "logging.progress=false", "logging.tensorboard=false", "logging.plot=false", f"checkpoint.every_steps={steps}",
    ] + ([f"model.policy={policy}"] if policy else []), TrainConfig)
    train_dpo(cfg)
    return read_metrics(out / "metrics.jsonl")


def main() -> None:
    """Parse the options and run `learn` in a temporary folder (or ``--keep DIR``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--policy", default=None, help="model.policy for every family (default: each family's)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep its files")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first window starts at step 2: step 1's rewards are all 0)")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        learn(args, args.keep)
        return
    tmp = Path(tempfile.mkdtemp(prefix="family-learning-"))
    try:
        learn(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def learn(args: argparse.Namespace, tmp: Path) -> None:
    """Build the pairs in ``tmp``, train each family there, print its rewards/accuracies and the headline."""
    from symdpo.data.build import build
    from symdpo.data.options import BuildOptions, SymbolOptions

    pairs = tmp / "pairs.jsonl"
    build(BuildOptions(source="easyvqa", split="train", out=pairs, max_records=args.records, seed=0,
                       symbols=SymbolOptions(k_min=2, k_max=3)))
    window = max(1, args.steps // 10)
    lows = []
    for name in args.families.split(","):
        seconds, rows = timed(lambda name=name: run(name, pairs, tmp / name, args.steps, args.lr, args.policy))
        first = statistics.mean(r["rewards/accuracies"] for r in rows[1:1 + window])  # step 1: rewards all 0
        last = statistics.mean(r["rewards/accuracies"] for r in rows[-window:])
        margin = statistics.mean(r["rewards/margins"] for r in rows[-window:])
        lows.append(last)
        print(f"{name} ({args.policy or 'default policy'}): rewards/accuracies {first:.2f} over steps 2-{1 + window} -> {last:.2f} over the last "
              f"{window} (margin {margin:.2f}), {seconds:.0f} s", flush=True)
    print(f"lowest family's rewards/accuracies after {args.steps} steps: {min(lows):.2f}")


if __name__ == "__main__":
    main()
