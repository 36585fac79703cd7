"""Evaluation items/s: the harness (prepare + run_eval) vs a plain per-item uncached loop, same items, same decoding.

Harness: ``run_eval`` on the items of ``prepare`` (batches of ``--batch-size`` items, each image decoded and,
for families that take features (Flamingo), encoded once per run through ``ImageProvider``; batched beam
search through the model's ``generate``; predictions streamed to JSONL in a temp dir). Every timed run starts
with an empty feature cache, so image decoding and encoding are part of its time.

Per-item loop: what a user without the harness writes, OpenFlamingo's eval loop one item at a time. For each
item it builds the same context from the same ``TaskPlan`` (same demonstrations, same prompt), loads every
image from disk again (the harness's own loader, so only caching and batching differ), and calls the model's
``generate`` on that one context with the task's decoding settings (``Task.generation``: beams, new tokens,
length penalty), so the model preprocesses and encodes every image of every item.

Both variants share the plan (reading easy-VQA and checking the images, timed once and printed apart) and
the loaded model (not timed). They are timed alternately ``--repeats`` times and the best time of each is
kept, since other processes only ever slow a run down. Predictions are compared item by item: batching
left-pads shorter contexts, which can move a random tiny model's beam search by a float rounding, so the count
of identical outputs is printed, not asserted (48/48 in every run so far, both families). The last line
printed is the headline.

Reading it: with 48 items x 4 random demonstrations from a 2048-image query set few images recur, so the
caches pay off mostly across trials (the query image comes back in every trial); ``--query-set 20`` gives the
reuse of a full-size run (5000 items x 4 shots from 2048 images: each image about 10 times). Flamingo takes
cached vision features; Qwen2-VL and Qwen3-VL cache their processor's pixels and their vision tower's outputs
per image (models/hf/image_cache.py: beam search's copies of each image are encoded once too); the other HF
families get decoded images only. The tiny models' vision towers are nearly free, so on a CPU the ratio here
is mostly batching. With more torch threads than idle cores (a busy 2-core machine), each small op waits for
a descheduled thread and times swing 3-10x between runs: ``--threads 1`` is steadier there; the header
prints the load average.

    .venv/bin/python benchmarks/eval_throughput.py                      # tiny Flamingo (10-30 s at --threads 1 here)
    .venv/bin/python benchmarks/eval_throughput.py --family qwen2-vl    # tiny-qwen2-vl
    .venv/bin/python benchmarks/eval_throughput.py --model NAME         # any preset or saved model folder
    options: [--items 48] [--shots 4] [--trials 1] [--query-set 2048] [--batch-size 8] [--threads 2]
             [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import warnings

from common import harness, headline, per_item_loop, timed

FAMILIES = {"flamingo": "tiny", "qwen2-vl": "tiny-qwen2-vl"}  # --family -> the preset it runs


def profiled(label: str, fn, top: int) -> None:
    """Run ``fn`` once under cProfile and print its ``top`` functions by cumulative and by own time."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    for order in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order).print_stats(top)
        body = buf.getvalue()
        body = body[body.find("ncalls"):] if "ncalls" in body else body
        print(f"--- profile: {label}, by {order} ---\n{body.rstrip()}")


def main() -> None:
    """Print both throughputs, their agreement, and (last) the harness / per-item ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="flamingo", choices=sorted(FAMILIES))
    parser.add_argument("--model", help="any model name or folder (default: the --family's tiny preset)")
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--batch-size", type=int, help="harness batch size (default: EvalConfig's)")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--query-set", type=int, default=2048, help="demonstration pool size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also run each variant once under cProfile")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes, once per generate call

    import torch

    from symdpo.eval.config import EvalConfig
    from symdpo.eval.plan import conditions
    from symdpo.eval.runner import prepare
    from symdpo.models.registry import load_model

    load = os.getloadavg()[0]  # other processes on the machine: with more threads than idle cores, timings swing
    torch.set_num_threads(args.threads)
    name = args.model or FAMILIES[args.family]
    label = args.model or args.family
    model = load_model(name)
    model.train(False)
    extra = {"batch_size": args.batch_size} if args.batch_size else {}
    config = EvalConfig(model=name, tasks=["easyvqa"], shots=[args.shots], trials=args.trials, num_samples=args.items,
                        query_set_size=args.query_set, **extra)

    warm = config.model_copy(update={"num_samples": 2})  # first-call allocations and lazy imports, both paths
    warm_plans = prepare(warm, model)
    harness(warm, model, warm_plans)
    per_item_loop(warm, model, warm_plans)

    prepare_s, plans = timed(lambda: prepare(config, model))  # shared by both variants: data reading, image checks
    n = sum(len(p.eval.records) * len(conditions(config, p.task.name)) for p in plans)  # predictions

    harness_s, loop_s = [], []
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        seconds, (stats, ours) = timed(lambda: harness(config, model, plans))
        harness_s.append(seconds)
        seconds, theirs = timed(lambda: per_item_loop(config, model, plans))
        loop_s.append(seconds)
    if args.profile:
        profiled("harness", lambda: harness(config, model, plans), 25)
        profiled("per-item loop", lambda: per_item_loop(config, model, plans), 25)

    assert stats.written == n == len(ours) == len(theirs), (stats.written, n, len(ours), len(theirs))
    same = sum(ours[k] == theirs[k] for k in theirs)
    slots = sum(sum(not isinstance(x, str) for x in p.context(c, r)[0])
                for p in plans for c in conditions(config, p.task.name) for r in p.eval.records)
    h_rate, l_rate = n / min(harness_s), n / min(loop_s)
    cached = "feature cache" if getattr(model, "takes_image_features", False) else "image cache"
    cache = f"{stats.images_encoded} images encoded for {slots} image slots ({stats.feature_hits} cache hits)"
    if not stats.images_encoded:  # a family without a cache: the processor and tower see every slot
        cached, cache = "decoded-image cache", f"no image cache for this family: all {slots} slots encoded"
    print(f"model {name} ({model.family}), easyvqa, {n} predictions, {args.shots}-shot, {args.trials} trial(s), "
          f"query set {args.query_set}, harness batch "
          f"{config.batch_size}, {torch.get_num_threads()} torch thread(s), best of {args.repeats}, "
          f"load average {load:.1f} on {os.cpu_count()} cores at start")
    print(f"shared prepare (data, image checks; in neither time): {prepare_s:.2f} s")
    print(f"{'variant':<40} {'items':>5} {'seconds':>8} {'items/s':>8}  runs (s)")
    for title, secs in ((f"harness (batch {config.batch_size}, {cached})", harness_s),
                        ("per-item loop (batch 1, uncached)", loop_s)):
        print(f"{title:<40} {n:>5} {min(secs):8.2f} {n / min(secs):8.2f}  {', '.join(f'{s:.2f}' for s in secs)}")
    print(f"harness: {cache}")
    print(f"identical raw generations: {same}/{n}")
    headline("harness vs per-item loop items/s", h_rate / l_rate, detail=f"{label}, {n} predictions, {args.shots} shots")


if __name__ == "__main__":
    main()
