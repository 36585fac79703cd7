"""One prepared GPU run: DPO step MFU (packed, shared-prefix, naive; eager and compiled), generation and eval throughput.

    python benchmarks/gpu.py                   # OpenFlamingo-3B-sized, bf16, one GPU (sized for < 5 minutes; not yet timed on one)
    python benchmarks/gpu.py --size tiny       # the same code on a CPU: 95 s on 2 cores with --steps 2 (CI runs it)
    options: [--parts train,generate,eval] [--steps 5] [--no-compile]

Training (``train``): the model of benchmarks/dpo_step_gpu.py (``common.build_of3b``: random weights with
OpenFlamingo-3B's shapes: CLIP ViT-L/14, MPT-1B, 6-layer perceiver, cross-attention before every layer; bf16
weights and AdamW state), OpenFlamingo's trainable set. A step holds 8 (then 1) preference pairs whose contexts
run from a quarter of the context length to all of it (8 images each), as shot counts and question lengths vary
in real data. Variants, timed interleaved: naive (each answer on its own copy of the context, padded), shared-prefix (one padded tree
row per pair), packed (shared-prefix trees packed into rows of at most two full contexts, no padding), and
packed under ``torch.compile`` of every layer (dynamic shapes; the graphs built during the timed steps are
counted: a rise is a recompilation). FLOPs are what each variant executes (PyTorch's FlopCounterMode over one
eager step: forward and backward, padding included), MFU divides them by the step time and the GPU's dense bf16
peak; pair tokens/s counts context + chosen + rejected once per pair, the same numerator for every variant.

Generation (``generate``): benchmarks/generate.py's comparison on this size: our Flamingo vs open-flamingo
2.0.1 (patched only to run on transformers 5), identical weights, batch 8, 3 images, a 512-token context, 20
new tokens, greedy and the evaluation's 3-beam search; the reference needs ``open-flamingo`` installed.

Evaluation (``eval``): benchmarks/eval_throughput.py's comparison on this model: ``run_eval`` (batched, image
features cached) vs the per-item loop of OpenFlamingo's evaluation (one context at a time, every image decoded
and encoded again), easy-VQA, 4 shots, the same items and decoding.

The last line is the headline: MFU at 8 and 1 pairs, shared-prefix vs naive at 8 pairs, generation and eval ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from functools import partial

import torch

from common import (
    EOC,
    OF3B_SIZES,
    PEAK_BF16,
    build_of3b,
    compare_generation,
    harness,
    interleaved,
    optimizer,
    pairs,
    peak_gib,
    per_item_loop,
    print_generation,
    reset_peak,
    step,
    step_flops,
    timed,
)


def varied_pairs(lmm, n: int, context: int, image_size: int):
    """Return n pairs with contexts from ``context / 4`` to ``context`` tokens, and their pair tokens."""
    lengths = [context] if n == 1 else [context // 4 + (context - context // 4) * k // (n - 1) for k in range(n)]
    contexts = [pairs(lmm, 1, length, image_size, seed=k)[0][0][0] for k, length in enumerate(lengths)]
    chosen = [f"blarf{k % 7}{EOC}" for k in range(n)]  # answers of 1-5 tokens, as `pairs` gives them
    rejected = [" ".join("abcde"[: 1 + k % 5]) + EOC for k in range(n)]
    tok = lmm.tokenizer
    tokens = sum(lmm.tokenize([c]).input_ids.shape[1] for c in contexts)
    tokens += sum(len(tok(a, add_special_tokens=False)["input_ids"]) for a in chosen + rejected)
    return (contexts, chosen, rejected), tokens


def timed_steps(lmm, opt, data, variants: dict, steps: int, device) -> dict[str, float]:
    """Return the median step seconds of each variant (name -> step kwargs), steps interleaved."""
    times = interleaved({name: partial(step, lmm, opt, data, **kw) for name, kw in variants.items()}, steps, device)
    return {name: statistics.median(ts) for name, ts in times.items()}


def train_part(args, size, device, peak) -> dict:
    """Print the DPO step table; return {(pairs, variant): MFU} and shared-prefix vs naive ratios."""
    from symdpo.models.compiled import compile_layers, graphs_built, reset_compiled

    lmm = build_of3b(size, device, "bfloat16")
    opt = optimizer(lmm, fused=device.type == "cuda")
    budget = 2 * size["context"] + 32
    variants = {"naive": dict(shared=False), "shared-prefix": dict(shared=True),
                "packed": dict(shared=True, pack=budget)}
    out = {"mfu": {}, "ratio": {}}
    print(f"{'pairs':>5} {'variant':<16} {'step ms':>8} {'pair tok/s':>10} {'TFLOP/step':>10} {'MFU':>6} "
          f"{'peak GiB':>8}", flush=True)
    for n in (8, 1):
        data, n_tokens = varied_pairs(lmm, n, size["context"], size["image_size"])
        # counting runs a step: also the warm-up (and AdamW's state on the first)
        flops = {name: step_flops(lmm, opt, data, **kw) for name, kw in variants.items()}
        mem = {}
        for name, kw in variants.items():
            reset_peak(device)
            step(lmm, opt, data, **kw)
            mem[name] = peak_gib(device)
        secs = timed_steps(lmm, opt, data, variants, args.steps, device)
        for name in variants:
            mfu = flops[name] / secs[name] / peak
            out["mfu"][(n, name)] = mfu
            print(f"{n:>5} {name:<16} {secs[name] * 1e3:8.1f} {n_tokens / secs[name]:10.0f} "
                  f"{flops[name] / 1e12:10.3f} {mfu:6.1%} {mem[name]:8.1f}", flush=True)
        out["ratio"][n] = secs["naive"] / secs["shared-prefix"]
        out.setdefault("data", {})[n] = (data, n_tokens, flops["packed"], secs)
    if args.compile:
        reset_compiled()
        compile_layers(lmm)
        for n in (8, 1):
            data, n_tokens, flops, eager = out["data"][n]
            compile_s, _ = timed(partial(step, lmm, opt, data, shared=True, pack=budget))  # compiles
            before = graphs_built()
            secs = timed_steps(lmm, opt, data, {"packed": dict(shared=True, pack=budget)}, args.steps, device)["packed"]
            mfu = flops / secs / peak
            out["mfu"][(n, "packed+compile")] = mfu
            print(f"{n:>5} {'packed+compile':<16} {secs * 1e3:8.1f} {n_tokens / secs:10.0f} {flops / 1e12:10.3f} "
                  f"{mfu:6.1%} {'':>8}  (first step {compile_s:.0f} s; {graphs_built() - before} graphs built "
                  f"while timed)", flush=True)
    del opt, lmm
    reset_peak(device)
    return out


def generate_part(args, device) -> float | None:
    """Print the generation table; return ours vs reference 3-beam tokens/s ratio (None: no reference installed)."""
    import importlib.util

    if importlib.util.find_spec("open_flamingo") is None:
        print("generation: open-flamingo 2.0.1 is not installed (pip install --no-deps open-flamingo==2.0.1): skipped",
              flush=True)
        return None
    from symdpo.models.flamingo.presets import TINY_CLIP, TINY_LLAMA

    size = OF3B_SIZES[args.size]
    lm, vision = (TINY_LLAMA, TINY_CLIP) if args.size == "tiny" else (size["lm"], size["vision"])
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows = compare_generation(lm, vision, device=device.type, dtype=dtype, context=512 if args.size != "tiny" else 256,
                   repeats=2)
    print_generation(rows)
    return rows[1][3]


def eval_part(args, size, device) -> float:
    """Print harness vs per-item loop on easy-VQA; return the items/s ratio."""
    from symdpo.eval.config import EvalConfig
    from symdpo.eval.plan import conditions
    from symdpo.eval.runner import prepare

    lmm = build_of3b(size, device, "bfloat16" if device.type == "cuda" else "float32")
    lmm.train(False)
    items = 48 if args.size != "tiny" else 16
    config = EvalConfig(model=f"flamingo-{args.size}-random", tasks=["easyvqa"], shots=[4], trials=1,
                        num_samples=items, query_set_size=256)
    plans = prepare(config, lmm)
    warm = config.model_copy(update={"num_samples": 2})  # first-call allocations and lazy imports
    harness(warm, lmm, prepare(warm, lmm))
    n = sum(len(p.eval.records) * len(conditions(config, p.task.name)) for p in plans)
    h, _ = timed(lambda: harness(config, lmm, plans))
    loop, _ = timed(lambda: per_item_loop(config, lmm, plans))
    print(f"eval: {n} easy-VQA predictions, 4 shots: run_eval {n / h:.2f} items/s, per-item loop {n / loop:.2f} items/s",
          flush=True)
    return loop / h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(OF3B_SIZES), default="of3b")
    parser.add_argument("--parts", default="train,generate,eval")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (interleaved)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    parts = set(args.parts.split(","))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), float("nan"))
    print(f"device: {name}; torch {torch.__version__}; size {args.size}", flush=True)
    start = time.perf_counter()
    head = []
    if "train" in parts:
        tr = train_part(args, OF3B_SIZES[args.size], device, peak)
        best = {n: max(v for (m, _), v in tr["mfu"].items() if m == n) for n in (8, 1)}
        mfu = f"MFU 8 pairs {best[8]:.1%}, 1 pair {best[1]:.1%}" if peak == peak else "MFU n/a (no GPU peak)"
        head += [mfu, f"shared-prefix vs naive {tr['ratio'][8]:.2f}x"]
    if "generate" in parts:
        ratio = generate_part(args, device)
        head.append(f"generation {ratio:.2f}x" if ratio else "generation not run")
    if "eval" in parts:
        head.append(f"eval {eval_part(args, OF3B_SIZES[args.size], device):.2f}x")
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    print(f"gpu benchmark ({args.size}, {name}): {'; '.join(head)}")


if __name__ == "__main__":
    main()
