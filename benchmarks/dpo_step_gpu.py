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
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dpo_step import EOC, VOCAB, pad_to_length, step  # noqa: E402

SIZES = {
    "of3b": dict(
        lm=dict(model_type="mpt", d_model=2048, n_heads=16, n_layers=24, expansion_ratio=4, max_seq_len=2048,
                vocab_size=VOCAB, no_bias=True, tie_word_embeddings=True),
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=224, patch_size=14),
        xattn=dict(perceiver_depth=6, perceiver_heads=8, perceiver_dim_head=64, num_latents=64, xattn_heads=8,
                   xattn_dim_head=64, xattn_ff_mult=4, cross_attn_every_n_layers=1),
        context=1024, image_size=224),
    "tiny": dict(
        lm=dict(model_type="mpt", d_model=64, n_heads=4, n_layers=2, expansion_ratio=4, max_seq_len=2048,
                vocab_size=VOCAB, no_bias=True, tie_word_embeddings=True),
        vision=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    image_size=64, patch_size=16),
        xattn=dict(perceiver_depth=1, perceiver_heads=4, perceiver_dim_head=16, num_latents=8, xattn_heads=4,
                   xattn_dim_head=16, xattn_ff_mult=2, cross_attn_every_n_layers=1),
        context=256, image_size=64),
}
# dense bf16 tensor-core peak (no sparsity), from NVIDIA's data sheets
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def build(size: dict, device: torch.device, dtype: str = "bfloat16", eager_mpt: bool = False,
          mask_rows: bool = False, checkpointing: bool = False):
    """Return the FlamingoLMM of ``size`` on ``device`` (random weights, non-zero gates), trainable set on."""
    from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo
    from symdpo.models.interface import TrainingSpec

    with device:  # initialise on the GPU: a 3B-parameter random init on the CPU takes minutes
        lmm = build_flamingo(FlamingoConfig(lm=size["lm"], tokenizer="tiny", vision=size["vision"], dtype=dtype,
                                            **size["xattn"]))
        lmm.model.lm.resize_token_embeddings(VOCAB + 3, mean_resizing=False)
    if eager_mpt:  # transformers' own attention, for comparison with the fused one we install
        from transformers.models.mpt.modeling_mpt import MptAttention

        for module in lmm.model.modules():
            if type(module).__name__ == "SdpaMptAttention":
                module.__class__ = MptAttention
    # mask_rows: OpenFlamingo's way (whole matrix trainable, gradient masked); else the recipes' default rows
    lmm.groups = lmm.prepare_training(TrainingSpec(weight_decay=0.1, gate_init=0.5, gradient_checkpointing=checkpointing,
                                                   family_options={"new_token_rows": "mask" if mask_rows else "rows"}))
    return lmm


def pairs(lmm, n: int, context: int, image_size: int, seed: int = 0):
    """Return n pairs: ``context``-token contexts with 8 images each, and 1-5 token chosen / rejected answers."""
    g = torch.Generator().manual_seed(seed)
    words = "what colour is the large shape in the middle of this picture and is it round".split()
    contexts, chosen, rejected = [], [], []
    for k in range(n):
        demo_q = " ".join(words[(i + k) % len(words)] for i in range(40))
        ctx = []
        for i in range(7):
            ctx += [torch.randn(3, image_size, image_size, generator=g),
                    f"Question:{demo_q}? Short answer:blarf{i}{EOC}"]
        ctx += [torch.randn(3, image_size, image_size, generator=g), f"Question:{demo_q}? Short answer:"]
        pad_to_length(lmm, ctx, context)
        contexts.append(ctx)
        chosen.append(f"blarf{k % 7}" + EOC)
        rejected.append(" ".join("abcde"[: 1 + k % 5]) + EOC)
    tok = lmm.tokenizer
    n_tokens = sum(lmm.tokenize([c]).input_ids.shape[1] for c in contexts)
    n_tokens += sum(len(tok(a, add_special_tokens=False)["input_ids"]) for a in chosen + rejected)
    return (contexts, chosen, rejected), n_tokens


def optimizer(lmm, fused: bool):
    """Return the recipes' AdamW (fused on CUDA there; ``fused=False``: PyTorch's multi-tensor default)."""
    from symdpo.train.params import adamw

    return adamw(lmm.groups, lr=1e-5, fused=fused)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def count_flops(lmm, opt, data, shared: bool) -> int:
    """Return the FLOPs one optimiser step executes (forward + backward, as counted by PyTorch)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(lmm, opt, data, shared=shared)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="of3b")
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
    size = SIZES[args.size]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), float("nan"))
    print(f"device: {name}; torch {torch.__version__}", flush=True)

    if args.precision == "amp":
        torch.autocast(device.type, dtype=torch.bfloat16).__enter__()  # for the whole run
    t0 = time.perf_counter()
    lmm = build(size, device, "float32" if args.precision == "amp" else "bfloat16", args.eager_mpt, args.mask_rows,
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
    flops = {s: count_flops(lmm, opt, data, s) for s in (True, False)}  # also creates the AdamW state
    for _ in range(args.warmup):
        for shared in (True, False):
            step(lmm, opt, data, shared=shared)
    times, mem = {True: [], False: []}, {}
    for shared in (True, False):  # one peak-memory pass per variant
        reset_peak(device)
        step(lmm, opt, data, shared=shared)
        mem[shared] = peak_gib(device)
    for _ in range(args.steps):
        for shared in (True, False):  # interleaved so clocks and neighbours hit both alike
            sync(device)
            t = time.perf_counter()
            step(lmm, opt, data, shared=shared)
            sync(device)
            times[shared].append(time.perf_counter() - t)
    rows = {}
    for shared, label in ((True, "shared-prefix"), (False, "naive")):
        s = statistics.median(times[shared])
        rows[shared] = s
        print(f"{label:>13}: step {s * 1000:7.1f} ms  {n_tokens / s:9.0f} pair tokens/s  "
              f"{flops[shared] / 1e12:6.1f} TFLOP/step  {flops[shared] / s / 1e12:6.1f} TFLOP/s  "
              f"MFU {flops[shared] / s / peak:6.1%}  peak memory {mem[shared]:5.1f} GiB", flush=True)
    print(f"naive / shared-prefix FLOPs per step: {flops[False] / flops[True]:.2f}x", flush=True)

    del opt
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
    print(f"peak memory, 2 shared-prefix steps: precomputed reference {ref_mem['precomputed']:.1f} GiB, live "
          f"(shared frozen) {ref_mem['live-shared']:.1f} GiB, live (full copy) {ref_mem['live']:.1f} GiB; "
          f"precomputed is {1 - ref_mem['precomputed'] / ref_mem['live']:.0%} lower than live (full copy), "
          f"{1 - ref_mem['precomputed'] / ref_mem['live-shared']:.0%} lower than live (shared frozen)", flush=True)
    print(f"shared-prefix vs naive step time ratio ({args.size}, {args.pairs} pairs, {args.precision}, {name}): "
          f"{rows[False] / rows[True]:.2f}x")


if __name__ == "__main__":
    main()
