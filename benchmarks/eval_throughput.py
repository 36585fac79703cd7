"""Benchmark: items/s of the evaluation harness vs a plain per-item loop, same tiny model, same items.

Harness: ``run_eval`` (batched generation, each image encoded once through the feature cache, predictions
streamed to JSONL). Baseline: for each item, load its images from disk and call ``model.generate`` on that one
context (no batching, no cache). Both use the same prepared items (data reading and image checks, a fixed
start-up cost, are not timed): easy-VQA 4-shot contexts with the task's decoding (3 beams, 5 new tokens).
Torch runs on ``--threads`` threads in both (1 by default: on a shared 2-core machine more threads only add
noise). The two are timed alternately ``--repeats`` times and the best time of each is kept, since other
processes only ever slow a run down. The last line printed is the headline.

    .venv/bin/python benchmarks/eval_throughput.py [--items 64] [--batch-size 16] [--shots 4] [--threads 1]
                                                   [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings


def per_item_loop(config, model, plans) -> tuple[int, list[str]]:
    """Return (items, predictions) of the uncached one-context-at-a-time loop over the run's items."""
    from symdpo.eval.images import ImageRef, load_ref
    from symdpo.eval.plan import conditions

    preds = []
    for plan in plans:
        gen = plan.task.generation
        for cond in conditions(config, plan.task.name):
            for record in plan.eval.records:
                context, _ = plan.context(cond, record)
                context = [load_ref(x) if isinstance(x, ImageRef) else x for x in context]  # decoded anew each time
                [text] = model.generate([context], max_new_tokens=gen.max_new_tokens, num_beams=gen.num_beams,
                                        length_penalty=gen.length_penalty)
                preds.append(plan.task.postprocess(text))
    return len(preds), preds


def times(seconds: list[float]) -> str:
    """Return the run times as "a, b, c"."""
    return ", ".join(f"{t:.2f}" for t in seconds)


def main() -> None:
    """Print both throughputs, their agreement, and (last) the harness / per-item ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes, once per generate call

    import json
    from pathlib import Path

    import torch

    from symdpo.eval.config import EvalConfig
    from symdpo.eval.runner import prepare, run_eval
    from symdpo.models.registry import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    config = EvalConfig(model=args.model, tasks=["easyvqa"], shots=[args.shots], trials=1, num_samples=args.items,
                        batch_size=args.batch_size)
    warm = config.model_copy(update={"num_samples": 2})
    with tempfile.TemporaryDirectory() as tmp:  # warm-up of both paths (first-call allocations)
        run_eval(warm, model, tmp)
    per_item_loop(warm, model, prepare(warm, model))
    plans = prepare(config, model)

    harness_s, loop_s = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:  # a fresh run: the feature cache starts empty every time
            start = time.perf_counter()
            stats = run_eval(config, model, tmp, plans=plans)
            harness_s.append(time.perf_counter() - start)
            rows = [json.loads(line) for line in (Path(tmp) / "predictions" / "part-000.jsonl").read_text().splitlines()]
        start = time.perf_counter()
        n, preds = per_item_loop(config, model, plans)
        loop_s.append(time.perf_counter() - start)
    harness_rate, loop_rate = stats.written / min(harness_s), n / min(loop_s)
    same = sum(r["prediction"] == p for r, p in zip(rows, preds, strict=True))
    print(f"model {args.model}, easyvqa, {n} items, {args.shots}-shot, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch thread(s)")
    print(f"harness (batched, feature cache): {harness_rate:7.2f} items/s  (runs {times(harness_s)} s; "
          f"{stats.images_encoded} images encoded for {n * (args.shots + 1)} image slots)")
    print(f"per-item uncached loop:           {loop_rate:7.2f} items/s  (runs {times(loop_s)} s)")
    print(f"identical predictions: {same}/{n}")
    print(f"harness vs per-item items/s ratio: {harness_rate / loop_rate:.2f}x")


if __name__ == "__main__":
    main()
