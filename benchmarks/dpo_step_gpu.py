"""DPO steps on an OpenFlamingo-3B-sized model on one GPU: tokens/s, MFU and peak memory, shared-prefix vs naive.

    python benchmarks/dpo_step_gpu.py                  # ~2-3 min on one H100/H200
    python benchmarks/dpo_step_gpu.py --size tiny      # the same code path on CPU, seconds (a smoke run)

Model: random weights with OpenFlamingo-3B's shapes (docs/openflamingo.md, released checkpoints) — CLIP ViT-L/14 (1024 wide, 24 layers,
224 px, 14 px patches), MPT-1B (2048 wide, 24 layers, 16 heads, ALiBi, tied 50,280-row vocabulary plus the
new tokens), a 6-layer perceiver with 64 latents, gated cross-attention before every LM layer — held in bf16.
Each pair is a 1024-token context with 8 images and 1-5 token chosen / rejected answers; OpenFlamingo's
trainable set (perceiver, cross-attention, new-token embedding rows) is trained with AdamW.

Figures: pair tokens/s counts context + chosen + rejected tokens (the same numerator for both variants, so its
ratio is the step-time ratio); MFU divides the FLOPs each variant really executes (counted by PyTorch's
FlopCounterMode over one step: forward, backward, no recomputation) by step time and the GPU's dense bf16 peak;
memory is ``torch.cuda.max_memory_allocated`` over the steps, weights included. Last, peak memory of two DPO
steps with precomputed reference log-probs vs a live frozen reference (full copy, as the reference code keeps;
and ours, sharing the frozen tensors).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from common import (
    OF3B_SIZES,
    PEAK_BF16,
    build_of3b,
    headline,
    interleaved,
    optimizer,
    pairs,
    peak_gib,
    reset_peak,
    step,
    step_flops,
)


def reference_memory(lmm, data, device, fused: bool) -> dict[str, float]:
    """Return the peak GiB of 2 shared-prefix steps with each reference: precomputed, live-shared, live (full copy)."""
    for p in lmm.model.parameters():
        p.grad = None
    ref_mem = {}
    for mode in ("precomputed", "live-shared", "live"):
        reset_peak(device)
        ref = None if mode == "precomputed" else lmm.reference_copy(share_frozen=mode == "live-shared")
        opt = optimizer(lmm, fused)
        for _ in range(2):
            step(lmm, opt, data, shared=True, ref=ref)
        ref_mem[mode] = peak_gib(device)
        del ref, opt
        for p in lmm.model.parameters():
            p.grad = None
    return ref_mem


def main() -> None:
    """Print each variant's step figures, the reference's peak memory and, last, the step time ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(OF3B_SIZES), default="of3b")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per optimiser step (micro-batch)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant (interleaved)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=["bf16", "amp"], default="bf16",
                        help="bf16: weights and AdamW state in bf16; amp: fp32 weights + bf16 autocast (what "
                             "`accelerate` mixed_precision=bf16 runs)")
    parser.add_argument("--eager-mpt", action="store_true", help="transformers' eager MPT attention")
    parser.add_argument("--mask-rows", action="store_true",
                        help="train the new-token rows by masking the whole matrix's gradient (OpenFlamingo)")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--foreach-adamw", action="store_true", help="PyTorch's default AdamW, not the fused one")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fused = device.type == "cuda" and not args.foreach_adamw  # as the recipes choose
    size = OF3B_SIZES[args.size]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), float("nan"))
    print(f"device: {name}; torch {torch.__version__}", flush=True)

    if args.precision == "amp":
        torch.autocast(device.type, dtype=torch.bfloat16).__enter__()  # for the whole run
    t0 = time.perf_counter()
    lmm = build_of3b(size, device, "float32" if args.precision == "amp" else "bfloat16", args.eager_mpt, args.mask_rows,
                args.checkpointing)
    n_params = sum(p.numel() for p in lmm.model.parameters())
    n_train = sum(p.numel() for p in lmm.model.parameters() if p.requires_grad)
    print(f"built in {time.perf_counter() - t0:.0f} s: {n_params / 1e9:.2f} B parameters, "
          f"{n_train / 1e9:.3f} B trainable ({args.precision}; MPT attention "
          f"{'eager' if args.eager_mpt else 'fused SDPA'}; new-token rows {'masked' if args.mask_rows else 'own'}"
          f"{'; gradient checkpointing' if args.checkpointing else ''}; AdamW {'fused' if fused else 'multi-tensor'})",
          flush=True)
    data, n_tokens = pairs(lmm, args.pairs, size["context"], size["image_size"])
    ctx_len = lmm.tokenize(data[0][:1]).input_ids.shape[1]
    print(f"{args.pairs} pairs per step, {ctx_len}-token contexts with 8 images, {n_tokens} pair tokens per step",
          flush=True)

    opt = optimizer(lmm, fused)
    flops = {s: step_flops(lmm, opt, data, shared=s) for s in (True, False)}  # also creates the AdamW state
    variants = {s: partial(step, lmm, opt, data, shared=s) for s in (True, False)}
    interleaved(variants, args.warmup, device)  # warm-up, not kept
    mem = {}
    for shared in (True, False):  # one peak-memory pass per variant
        reset_peak(device)
        step(lmm, opt, data, shared=shared)
        mem[shared] = peak_gib(device)
    times = interleaved(variants, args.steps, device)
    rows = {}
    for shared, label in ((True, "shared-prefix"), (False, "naive")):
        s = statistics.median(times[shared])
        rows[shared] = s
        print(f"{label:>13}: step {s * 1000:7.1f} ms  {n_tokens / s:9.0f} pair tokens/s  "
              f"{flops[shared] / 1e12:6.1f} TFLOP/step  {flops[shared] / s / 1e12:6.1f} TFLOP/s  "
              f"MFU {flops[shared] / s / peak:6.1%}  peak memory {mem[shared]:5.1f} GiB", flush=True)
    print(f"naive / shared-prefix FLOPs per step: {flops[False] / flops[True]:.2f}x", flush=True)

    del opt, variants
    ref_mem = reference_memory(lmm, data, device, fused)
    print(f"peak memory, 2 shared-prefix steps: precomputed reference {ref_mem['precomputed']:.1f} GiB, live "
          f"(shared frozen) {ref_mem['live-shared']:.1f} GiB, live (full copy) {ref_mem['live']:.1f} GiB; "
          f"precomputed is {1 - ref_mem['precomputed'] / ref_mem['live']:.0%} lower than live (full copy), "
          f"{1 - ref_mem['precomputed'] / ref_mem['live-shared']:.0%} lower than live (shared frozen)", flush=True)
    headline("shared-prefix vs naive step time", rows[False] / rows[True],
             f"{args.size}, {args.pairs} pairs, {args.precision}, {name}")


if __name__ == "__main__":
    main()
