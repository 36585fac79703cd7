"""DPO optimiser-step time, shared-prefix vs naive, and peak memory, precomputed vs live reference.

    .venv/bin/python benchmarks/dpo_step.py            # ~1-2 min on 2 CPU cores

Model: a small random Flamingo with realistic *shapes* where they decide the costs — a 1024-token context
holding 8 images (224 px, 256 CLIP patches each, 64 perceiver latents), cross-attention before every
layer (OpenFlamingo-3B), a 50,280-token vocabulary (MPT-1B's; the naive path computes the full-vocab
logits at every context position twice) — but narrow and shallow so it runs on a laptop CPU. Answers are
1-5 tokens. One pair per step, as in the reference setup (micro-batch 1).

Memory: each configuration runs 2 training steps in a fresh process; the figure is the peak resident set
during them (the kernel's VmHWM, reset once the models are built, so the build's temporaries are left out)
above the resident set after imports. "live" is a full frozen copy of the model, as the reference code
keeps; "live (shared frozen)" is ours, sharing the frozen tensors. This narrow model's activations weigh
far more against its weights than OpenFlamingo-3B's do, so the precomputed reference saves less here than
at full size: see benchmarks/dpo_step_gpu.py for that.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings

import torch

warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
EOC = "<|endofchunk|>"
VOCAB = 50280
# tied input/output embeddings, as MPT-1B; frozen LM + CLIP outweigh the trainable set, as in OF-3B
LM = dict(model_type="llama", hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
          num_key_value_heads=6, max_position_embeddings=2048, vocab_size=512, tie_word_embeddings=True)
CLIP = dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4, image_size=224,
            patch_size=14)
XATTN = dict(perceiver_depth=2, perceiver_heads=4, perceiver_dim_head=32, num_latents=64, xattn_heads=4,
             xattn_dim_head=32, xattn_ff_mult=2, cross_attn_every_n_layers=1)


def build():
    """Return the benchmark FlamingoLMM (random weights, non-zero gates, 50k-row embeddings and LM head)."""
    from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo
    from symdpo.models.interface import TrainingSpec

    lmm = build_flamingo(FlamingoConfig(lm=LM, tokenizer="tiny", vision=CLIP, **XATTN))
    lmm.model.lm.resize_token_embeddings(VOCAB, mean_resizing=False)  # MPT-1B's vocabulary width
    # the recipes' default: OpenFlamingo's trainable set, new-token rows as their own parameter; gates open
    lmm.groups = lmm.prepare_training(TrainingSpec(weight_decay=0.1, gate_init=0.5))
    lmm.source = "bench"
    return lmm


def batch(lmm, seed: int = 0):
    """Return one pair: a ~1024-token context with 8 images, and 1-5 token chosen / rejected answers."""
    g = torch.Generator().manual_seed(seed)
    words = "what colour is the large shape in the middle of this picture and is it round".split()
    demo_q = " ".join(words[i % len(words)] for i in range(40))
    context = []
    for i in range(7):
        context += [torch.randn(3, 224, 224, generator=g), f"Question:{demo_q}? Short answer:blarf{i}{EOC}"]
    context += [torch.randn(3, 224, 224, generator=g), f"Question:{demo_q}? Short answer:"]
    pad_to_length(lmm, context, 1024)
    n = lmm.tokenize([context]).input_ids.shape[1]
    return [context], ["blarf3" + EOC], ["a b c d" + EOC], n


def pad_to_length(lmm, context: list, tokens: int) -> None:
    """Prefix the first demonstration's text with filler words until ``context`` is ``tokens`` tokens (or just over)."""
    words = "the shape in this picture is large and round".split()
    text, extra = context[1], 0
    while lmm.tokenize([context]).input_ids.shape[1] < tokens:
        extra += 4
        context[1] = " ".join(words[i % len(words)] for i in range(extra)) + " " + text


def step(lmm, opt, data, *, shared: bool, ref=None):
    """Run one DPO+SFT optimiser step (reference log-probs precomputed unless ``ref`` is given)."""
    from symdpo.train.losses import preference_loss

    contexts, chosen, rejected = data[:3]
    pc, pr, nc, _ = lmm.pair_logps(contexts, chosen, rejected, shared_prefix=shared)
    if ref is None:
        rc, rr = pc.detach() - 0.1, pr.detach() + 0.1  # stands for the stored reference log-probs
    else:
        with torch.no_grad():
            rc, rr, _, _ = ref.pair_logps(contexts, chosen, rejected, shared_prefix=shared)
    loss = preference_loss(pc.float(), pr.float(), rc.float(), rr.float(), beta=0.1)[0].mean() - pc.sum() / nc.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in lmm.model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def optimizer(lmm):
    from symdpo.train.params import adamw

    return adamw(lmm.groups, lr=1e-5)  # the recipes' AdamW on a CPU (not fused)


def time_steps(repeats: int = 3) -> tuple[float, float, int]:
    """Return (median shared-prefix step s, median naive step s, context tokens), steps interleaved."""
    lmm = build()
    lmm.model.train()
    opt, data = optimizer(lmm), batch(lmm)
    for shared in (True, False):  # warm-up (allocator, first-call costs)
        step(lmm, opt, data, shared=shared)
    times = {True: [], False: []}
    for _ in range(repeats):
        for shared in (True, False):  # interleaved, so load from other processes hits both alike
            t = time.perf_counter()
            step(lmm, opt, data, shared=shared)
            times[shared].append(time.perf_counter() - t)
    return statistics.median(times[True]), statistics.median(times[False]), data[3]


def child_memory(reference: str) -> None:
    """Print the peak RSS (MiB) above the post-import baseline of 2 training steps with ``reference``."""
    from symdpo.train.reference import live_reference

    base = _rss_mib("VmRSS")
    lmm = build()
    lmm.model.train()
    ref = None
    if reference != "precomputed":
        ref = live_reference(lmm, share_frozen=reference == "live-shared")
    opt, data = optimizer(lmm), batch(lmm)
    _release_and_reset_peak()  # the peak then holds the models and the training, not the build's temporaries
    for _ in range(2):
        step(lmm, opt, data, shared=True, ref=ref)
    print(json.dumps({"reference": reference, "peak_mib": _rss_mib("VmHWM") - base}))


def _release_and_reset_peak() -> None:
    """Return freed heap to the OS and restart the kernel's peak-RSS counter (Linux; a no-op elsewhere)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
    except OSError:
        pass  # the peak then also counts the build's temporaries (both variants alike)


def _rss_mib(field: str) -> float:
    """Return the process's ``field`` (VmRSS: resident now, VmHWM: peak resident) in MiB from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def memory(reference: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", reference], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["precomputed", "live", "live-shared"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        child_memory(args.child)
        return
    torch.manual_seed(0)
    mem = {r: memory(r) for r in ("precomputed", "live", "live-shared")}
    print(f"peak memory above baseline: precomputed {mem['precomputed']:.0f} MiB, live (full copy) "
          f"{mem['live']:.0f} MiB, live (shared frozen) {mem['live-shared']:.0f} MiB")
    print(f"precomputed-reference memory is {1 - mem['precomputed'] / mem['live']:.0%} lower than live (full copy), "
          f"{1 - mem['precomputed'] / mem['live-shared']:.0%} lower than live (shared frozen)")
    shared, naive, tokens = time_steps(args.repeats)
    print(f"step time ({tokens}-token context, 8 images, 1-5 token answers, {torch.get_num_threads()} threads): "
          f"shared-prefix {shared * 1000:.0f} ms, naive {naive * 1000:.0f} ms")
    print(f"shared-prefix vs naive step time ratio: {naive / shared:.2f}x")


if __name__ == "__main__":
    main()
