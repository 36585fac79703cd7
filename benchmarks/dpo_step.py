"""DPO optimiser-step time, shared-prefix vs naive, and peak memory, precomputed vs live reference.

    .venv/bin/python benchmarks/dpo_step.py                      # ~1-2 min on 2 CPU cores
    .venv/bin/python benchmarks/dpo_step.py --family qwen2-vl    # the same through an HF family's seam
    .venv/bin/python benchmarks/dpo_step.py --family idefics
    .venv/bin/python benchmarks/dpo_step.py --size tiny --repeats 1  # a smoke run, ~20 s (tests/test_benchmarks.py)

``--size tiny`` (Flamingo only) runs the same code — three memory children, warm-up, interleaved timed steps —
on a 64-wide 2-layer LM, a 64 px 2-layer vision tower and the shortest context the 8 demonstrations fit in
(about 640 tokens), still with the 50,280-token vocabulary. Its figures only show that the benchmark runs.

HF families (``--family qwen2-vl | idefics | idefics3``): random models of the same widths and depth (384-wide
6-layer LM, 50,280-token vocabulary, 4-layer 256-wide vision tower at 224 px), each fed by its own processor
(Qwen2-VL: 64 merged patches per image; IDEFICS: 64 resampled latents through gated cross-attention before
every layer), trained with the family's default policy.

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
import statistics
import subprocess
import sys
import warnings

import torch

from common import EOC, VOCAB, headline, interleaved, optimizer, pad_to_length, reset_rss_peak, rss_mib, step

warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
# tied input/output embeddings, as MPT-1B; frozen LM + CLIP outweigh the trainable set, as in OF-3B
LM = dict(model_type="llama", hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
          num_key_value_heads=6, max_position_embeddings=2048, vocab_size=512, tie_word_embeddings=True)
CLIP = dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4, image_size=224,
            patch_size=14)
XATTN = dict(perceiver_depth=2, perceiver_heads=4, perceiver_dim_head=32, num_latents=64, xattn_heads=4,
             xattn_dim_head=32, xattn_ff_mult=2, cross_attn_every_n_layers=1)
# "default": the figures above (the model described in the docstring); "tiny": a smoke run of the same code
SIZES = {
    "default": dict(lm=LM, vision=CLIP, xattn=XATTN, context=1024, image_size=224),
    "tiny": dict(lm=dict(LM, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4),
                 vision=dict(CLIP, hidden_size=64, intermediate_size=128, num_hidden_layers=2, image_size=64,
                             patch_size=16),
                 xattn=dict(XATTN, perceiver_depth=1, perceiver_dim_head=16, num_latents=8, xattn_dim_head=16),
                 context=0, image_size=64),  # context 0: no filler (the 8 demonstrations alone, ~640 tokens)
}


def build(size: str = "default"):
    """Return the benchmark FlamingoLMM (random weights, non-zero gates, 50k-row embeddings and LM head)."""
    from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo
    from symdpo.models.interface import TrainingSpec

    shapes = SIZES[size]
    lmm = build_flamingo(FlamingoConfig(lm=shapes["lm"], tokenizer="tiny", vision=shapes["vision"], **shapes["xattn"]))
    lmm.model.lm.resize_token_embeddings(VOCAB, mean_resizing=False)  # MPT-1B's vocabulary width
    # the recipes' default: OpenFlamingo's trainable set, new-token rows as their own parameter; gates open
    lmm.groups = lmm.prepare_training(TrainingSpec(weight_decay=0.1, gate_init=0.5))
    lmm.source = "bench"
    return lmm


def build_hf(family: str):
    """Return a random HF-family model of the benchmark's widths, with its own processor, trainable set on."""
    import transformers as tf

    from symdpo.models.hf.adapter import HFInterleavedLMM
    from symdpo.models.hf.families import FAMILIES, tiny_processor
    from symdpo.models.hf.tiny import image_only
    from symdpo.models.interface import TrainingSpec

    name = {"qwen2-vl": "qwen2_vl", "idefics": "idefics", "idefics3": "idefics3"}[family]
    tok = tiny_processor(name).tokenizer
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    text = dict(vocab_size=VOCAB, hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
                num_key_value_heads=6, max_position_embeddings=4096, **ids)
    torch.manual_seed(0)
    if name == "qwen2_vl":
        processor = image_only(tf.Qwen2VLProcessor)(
            image_processor=tf.Qwen2VLImageProcessorPil(min_pixels=224 * 224, max_pixels=224 * 224), tokenizer=tok)
        rope = {"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 10000.0}
        cfg = tf.Qwen2VLConfig(text_config=dict(rope_parameters=rope, **text),
                               vision_config=dict(depth=4, embed_dim=256, hidden_size=384, num_heads=4, mlp_ratio=4,
                                                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
                               image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
                               video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
                               vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"))
        hf = tf.Qwen2VLForConditionalGeneration(cfg)
    elif name == "idefics":
        processor = tf.IdeficsProcessor(tf.IdeficsImageProcessorPil(image_size=224), tok, image_size=224)
        cfg = tf.IdeficsConfig(**text, vision_config=dict(embed_dim=256, image_size=224, patch_size=14,
                                                          num_hidden_layers=4, num_attention_heads=4,
                                                          intermediate_size=1024),
                               perceiver_config=dict(resampler_n_latents=64, resampler_depth=2, resampler_n_heads=4,
                                                     resampler_head_dim=32), use_resampler=True, cross_layer_interval=1)
        hf = tf.IdeficsForVisionText2Text(cfg)
    else:
        ip = tf.Idefics3ImageProcessorPil(size={"longest_edge": 224}, max_image_size={"longest_edge": 224})
        processor = tf.Idefics3Processor(ip, tok, image_seq_len=64)
        cfg = tf.Idefics3Config(text_config=dict(model_type="llama", **text), scale_factor=2,
                                vision_config=dict(hidden_size=256, image_size=224, patch_size=14, num_hidden_layers=4,
                                                   num_attention_heads=4, intermediate_size=1024),
                                image_token_id=tok.convert_tokens_to_ids("<image>"))
        hf = tf.Idefics3ForConditionalGeneration(cfg)
    lmm = HFInterleavedLMM(hf, processor, family=FAMILIES[name], source="bench")
    gates = 0.5 if FAMILIES[name].gates else None  # open gates, as the Flamingo build's
    lmm.groups = lmm.prepare_training(TrainingSpec(weight_decay=0.1, gate_init=gates))
    return lmm


def batch(lmm, seed: int = 0, context_tokens: int = 1024, image_size: int = 224):
    """Return one pair: a ~``context_tokens``-token context with 8 images, and 1-5 token chosen / rejected answers."""
    g = torch.Generator().manual_seed(seed)
    words = "what colour is the large shape in the middle of this picture and is it round".split()
    demo_q = " ".join(words[i % len(words)] for i in range(40))

    def image():  # Flamingo takes preprocessed pixels; HF processors take images ([0, 1] tensors)
        if lmm.takes_image_features:
            return torch.randn(3, image_size, image_size, generator=g)
        return torch.rand(3, image_size, image_size, generator=g)

    context = []
    for i in range(7):
        context += [image(), f"Question:{demo_q}? Short answer:blarf{i}{EOC}"]
    context += [image(), f"Question:{demo_q}? Short answer:"]
    pad_to_length(lmm, context, context_tokens)
    n = lmm.tokenize([context]).input_ids.shape[1]
    return [context], ["blarf3" + EOC], ["a b c d" + EOC], n


def sized_batch(lmm, size: str):
    """Return `batch` for the context length and image size of ``size`` (a key of SIZES)."""
    return batch(lmm, context_tokens=SIZES[size]["context"], image_size=SIZES[size]["image_size"])


def time_steps(repeats: int = 3, family: str = "flamingo", size: str = "default") -> tuple[float, float, int]:
    """Return (median shared-prefix step s, median naive step s, context tokens), steps interleaved."""
    lmm = build(size) if family == "flamingo" else build_hf(family)
    lmm.train(True)
    opt, data = optimizer(lmm), sized_batch(lmm, size)
    variants = {"shared-prefix": lambda: step(lmm, opt, data, shared=True),
                "naive": lambda: step(lmm, opt, data, shared=False)}
    interleaved(variants, 1)  # warm-up (allocator, first-call costs), not kept
    times = interleaved(variants, repeats)
    return statistics.median(times["shared-prefix"]), statistics.median(times["naive"]), data[3]


def child_memory(reference: str, size: str = "default") -> None:
    """Print the peak RSS (MiB) above the post-import baseline of 2 training steps with ``reference``."""
    base = rss_mib("VmRSS")
    lmm = build(size)
    lmm.train(True)
    ref = None
    if reference != "precomputed":
        ref = lmm.reference_copy(share_frozen=reference == "live-shared")
    opt, data = optimizer(lmm), sized_batch(lmm, size)
    reset_rss_peak()  # the peak then holds the models and the training, not the build's temporaries
    for _ in range(2):
        step(lmm, opt, data, shared=True, ref=ref)
    print(json.dumps({"reference": reference, "peak_mib": rss_mib("VmHWM") - base}))


def memory(reference: str, size: str = "default") -> float:
    """Return the peak RSS (MiB) of `child_memory` for ``reference``, run in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--child", reference, "--size", size], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["precomputed", "live", "live-shared"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--family", default="flamingo", choices=["flamingo", "qwen2-vl", "idefics", "idefics3"])
    parser.add_argument("--size", choices=sorted(SIZES), default="default",
                        help="tiny: the same code on a small Flamingo, a smoke run (not for HF families)")
    args = parser.parse_args()
    if args.size != "default" and args.family != "flamingo":
        parser.error("--size tiny is for the Flamingo model only")
    if args.child:
        child_memory(args.child, args.size)
        return
    torch.manual_seed(0)
    if args.family != "flamingo":  # the seam's speed for an HF family; memory is the Flamingo figure's story
        shared, naive, tokens = time_steps(args.repeats, args.family)
        print(f"{args.family} step time ({tokens}-token context, 8 images, 1-5 token answers, "
              f"{torch.get_num_threads()} threads): shared-prefix {shared * 1000:.0f} ms, naive {naive * 1000:.0f} ms")
        headline("shared-prefix vs naive step time", naive / shared)
        return
    mem = {r: memory(r, args.size) for r in ("precomputed", "live", "live-shared")}
    print(f"peak memory above baseline: precomputed {mem['precomputed']:.0f} MiB, live (full copy) "
          f"{mem['live']:.0f} MiB, live (shared frozen) {mem['live-shared']:.0f} MiB")
    print(f"precomputed-reference memory is {1 - mem['precomputed'] / mem['live']:.0%} lower than live (full copy), "
          f"{1 - mem['precomputed'] / mem['live-shared']:.0%} lower than live (shared frozen)")
    shared, naive, tokens = time_steps(args.repeats, size=args.size)
    print(f"step time ({tokens}-token context, 8 images, 1-5 token answers, {torch.get_num_threads()} threads): "
          f"shared-prefix {shared * 1000:.0f} ms, naive {naive * 1000:.0f} ms")
    headline("shared-prefix vs naive step time", naive / shared)


if __name__ == "__main__":
    main()
