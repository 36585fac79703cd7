"""What the benchmarks share: timing, peak memory, the DPO-step model and pairs, the comparisons two scripts run.

Every script runs as ``python benchmarks/NAME.py``, so this folder is first on ``sys.path`` and a script
imports this module plainly (``from common import ...``). Importing it also puts this checkout's ``src/``
ahead of any installed ``symdpo``, so a checkout's benchmarks measure that checkout. torch and symdpo are
imported inside the functions that need them: the data benchmarks never load torch.

Sections, top to bottom: the headline, timing, peak memory, the DPO step on OpenFlamingo-3B's shapes
(benchmarks/dpo_step.py, dpo_step_gpu.py, gpu.py, scale_gpu.py), generation against open-flamingo 2.0.1
(generate.py, gpu.py), the evaluation harness against a per-item loop (eval_throughput.py, gpu.py).
"""

from __future__ import annotations

import importlib.util
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(1, str(ROOT / "src"))

from symdpo.models.prompts import AGNOSTIC_END as EOC  # noqa: E402  (light: no torch; needs src/ on the path)

# --- the headline ------------------------------------------------------------------------------------------

def headline(what: str, ratio: float, setting: str = "", detail: str = "") -> str:
    """Print and return a ratio headline, a benchmark's last line: ``<what> ratio (<setting>): 1.83x (<detail>)``."""
    line = f"{what} ratio{f' ({setting})' if setting else ''}: {ratio:.2f}x{f' ({detail})' if detail else ''}"
    print(line, flush=True)
    return line


# --- timing ------------------------------------------------------------------------------------------------

def sync(device=None) -> None:
    """Wait for the GPU's queued work when ``device`` is a CUDA device (a torch.device or its name); else nothing."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device=None) -> tuple[float, Any]:
    """Return (wall seconds, result) of one call of ``fn``, ``device`` synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def best_of(fn: Callable[[], Any], repeats: int, device=None) -> tuple[float, Any]:
    """Return (fastest seconds of ``repeats`` calls, last result) after one untimed warm-up call of ``fn``."""
    fn()
    runs = [timed(fn, device) for _ in range(repeats)]
    return min(s for s, _ in runs), runs[-1][1]


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int, device=None) -> dict[str, list[float]]:
    """Return each variant's seconds over ``rounds`` rounds, every variant once per round in turn.

    Interleaving makes load from other processes and clock changes hit every variant alike.
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(timed(fn, device)[0])
    return times


# --- peak memory -------------------------------------------------------------------------------------------

def reset_peak(device) -> None:
    """Collect garbage and, on a GPU, empty the cache and restart ``torch.cuda.max_memory_allocated``."""
    import gc

    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device) -> float:
    """Return the GPU's peak allocated memory since `reset_peak` in GiB (NaN on a CPU)."""
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.device(device).type == "cuda" else float("nan")


def rss_mib(field: str) -> float:
    """Return the process's ``field`` (VmRSS: resident now, VmHWM: peak resident) in MiB from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def reset_rss_peak() -> None:
    """Return freed heap to the OS and restart the kernel's peak-RSS counter (Linux; a no-op elsewhere)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
    except OSError:
        pass  # the peak then also counts what came before (every variant alike)


def maxrss_gib(usage: resource.struct_rusage) -> float:
    """Return the peak resident set of a ``getrusage`` / ``os.wait4`` result in GiB (Linux reports KiB)."""
    return usage.ru_maxrss / 2**20


# --- the DPO step on OpenFlamingo-3B's shapes --------------------------------------------------------------

VOCAB = 50280  # MPT-1B's vocabulary
# "of3b": OpenFlamingo-3B's shapes (CLIP ViT-L/14, MPT-1B, 6-layer perceiver); "tiny": the same code on a CPU
OF3B_SIZES = {
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
# dense bf16 tensor-core peak (no sparsity), from NVIDIA's data sheets: the denominator of MFU
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def build_of3b(size: dict, device, dtype: str = "bfloat16", eager_mpt: bool = False, mask_rows: bool = False,
               checkpointing: bool = False):
    """Return the FlamingoLMM of ``size`` (an OF3B_SIZES entry) on ``device``: random weights, gates open, trainable."""
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
    lmm.groups = lmm.prepare_training(TrainingSpec(weight_decay=0.1, gate_init=0.5,
                                                   gradient_checkpointing=checkpointing,
                                                   family_options={"new_token_rows": "mask" if mask_rows else "rows"}))
    return lmm


def pad_to_length(lmm, context: list, tokens: int) -> None:
    """Prefix the first demonstration's text with filler words until ``context`` is ``tokens`` tokens (or just over)."""
    words = "the shape in this picture is large and round".split()
    text, extra = context[1], 0
    while lmm.tokenize([context]).input_ids.shape[1] < tokens:
        extra += 4
        context[1] = " ".join(words[i % len(words)] for i in range(extra)) + " " + text


def pairs(lmm, n: int, context: int, image_size: int, seed: int = 0):
    """Return (n pairs, their tokens): ``context``-token contexts of 8 images, 1-5 token chosen / rejected answers."""
    import torch

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


def optimizer(lmm, fused: bool = False):
    """Return the recipes' AdamW (lr 1e-5) over the model's groups; ``fused``: one kernel per group (CUDA)."""
    from symdpo.train.params import adamw

    return adamw(lmm.groups, lr=1e-5, fused=fused)


def step(lmm, opt, data, *, shared: bool, ref=None, pack: int | None = None) -> None:
    """Run one DPO+SFT optimiser step (reference log-probs precomputed unless ``ref``; ``pack``: a row budget)."""
    import torch

    from symdpo.train.losses import symdpo_loss

    contexts, chosen, rejected = data[:3]
    pc, pr, nc, nr = lmm.pair_logps(contexts, chosen, rejected, shared_prefix=shared, max_tokens_per_row=pack)
    if ref is None:
        rc, rr = pc.detach() - 0.1, pr.detach() + 0.1  # stands for the stored reference log-probs
    else:
        with torch.no_grad():
            rc, rr, _, _ = ref.pair_logps(contexts, chosen, rejected, shared_prefix=shared)
    loss = symdpo_loss(pc.float(), pr.float(), rc.float(), rr.float(), nc, nr).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in lmm.module.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def step_flops(lmm, opt, data, **step_kw) -> int:
    """Return the FLOPs one `step` executes (forward + backward, as PyTorch's FlopCounterMode counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(lmm, opt, data, **step_kw)
    return counter.get_total_flops()


# --- generation: our Flamingo vs open-flamingo 2.0.1, same weights -----------------------------------------

def openflamingo_reference():
    """Return tests/models/openflamingo_reference.py, which loads open-flamingo 2.0.1 as the parity tests do."""
    if "openflamingo_reference" not in sys.modules:
        path = ROOT / "tests" / "models" / "openflamingo_reference.py"
        spec = importlib.util.spec_from_file_location("openflamingo_reference", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["openflamingo_reference"] = module
        spec.loader.exec_module(module)
    return sys.modules["openflamingo_reference"]


def patch_reference_for_transformers5() -> None:
    """Make the reference's LM forward take ``attention_mask`` as optional, as transformers 5's generate() needs."""
    mixin = openflamingo_reference().load_reference().flamingo_lm.FlamingoLMMixin
    original = mixin.forward
    if getattr(original, "_patched", False):
        return

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return original(self, input_ids, attention_mask, **kwargs)

    forward._patched = True
    mixin.forward = forward


def generation_workload(model, batch=8, images=3, context=512, seed=0):
    """Return (input ids, attention mask, pixels): ``batch`` random contexts with an <image> opening each chunk."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 400, (batch, context), generator=g)
    for k in range(images):  # an <image> at the start of each of 3 demonstration-sized chunks
        ids[:, k * (context // images)] = model.media_token_id
    size = model.vision.config.image_size
    return ids, torch.ones_like(ids), torch.randn(batch, images, 1, 3, size, size, generator=g)


def compare_generation(lm: dict, vision: dict, *, device: str = "cpu", dtype=None, batch: int = 8, images: int = 3,
                       context: int = 512, new_tokens: int = 20, repeats: int = 3) -> list[tuple]:
    """Return (decoding, reference tok/s, ours tok/s, ratio, same tokens) for greedy and 3-beam, same weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo
    from symdpo.models.flamingo.checkpoints import load_openflamingo_checkpoint

    reference = openflamingo_reference()
    dtype = dtype or torch.float32
    torch.manual_seed(0)
    with torch.device(device):  # OpenFlamingo's perceiver/cross-attention sizes, which the reference hard-codes
        lmm = build_flamingo(FlamingoConfig(lm=lm, tokenizer="tiny", vision=vision))
        ours = lmm.model.eval()
        ref_lm = AutoModelForCausalLM.from_config(ours.lm.config)
    ref_lm.load_state_dict(ours.lm.state_dict())
    patch_reference_for_transformers5()
    with torch.device(device):
        ref = reference.build_reference(ref_lm, ours.vision, media_token_id=ours.media_token_id,
                                        eoc_token_id=ours.eoc_token_id,
                                        decoder_layers_attr_name=ours.decoder_layers_path, every=1).eval()
    with tempfile.TemporaryDirectory() as tmp:  # identical weights: the reference's checkpoint, loaded by our mapping
        torch.save(reference.reference_checkpoint(ref), Path(tmp) / "checkpoint.pt")
        load_openflamingo_checkpoint(ours, Path(tmp) / "checkpoint.pt")
    ours.to(device, dtype)
    ref.to(device, dtype)
    ids, mask, vision_x = (t.to(device) for t in generation_workload(ours, batch, images, context))
    vision_x = vision_x.to(dtype)
    decode = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=lmm.tokenizer.pad_token_id)

    def beam_kw(beams: int) -> dict:
        return {"length_penalty": 0.0} if beams > 1 else {}  # the protocol's setting; meaningless for greedy

    def run_ours(beams):
        with torch.no_grad():
            b, t = vision_x.shape[:2]
            media = ours.resample(ours.encode_images(vision_x.flatten(0, 2)), [t] * b)
            return ours.generate(ids, mask, media, torch.full((b,), t, device=device), num_beams=beams, **decode,
                                 **beam_kw(beams))

    def run_ref(beams):
        with torch.no_grad():
            out = ref.generate(vision_x, ids, attention_mask=mask, num_beams=beams, **decode, **beam_kw(beams))
            return out[:, ids.shape[1]:]

    rows = []
    for beams, label in ((1, "greedy"), (3, "3-beam")):
        t_ref, out_ref = best_of(lambda b=beams: run_ref(b), repeats, device)
        t_ours, out_ours = best_of(lambda b=beams: run_ours(b), repeats, device)
        tokens = ids.shape[0] * new_tokens
        rows.append((label, tokens / t_ref, tokens / t_ours, t_ref / t_ours, torch.equal(out_ref, out_ours)))
    return rows


def print_generation(rows: list[tuple]) -> None:
    """Print the table of `compare_generation`."""
    print(f"{'decoding':<8} {'reference tok/s':>16} {'ours tok/s':>11} {'ratio':>6}  same tokens")
    for label, r, o, ratio, same in rows:
        print(f"{label:<8} {r:16.1f} {o:11.1f} {ratio:5.2f}x  {same}")


# --- evaluation: the harness vs a per-item uncached loop, same items ---------------------------------------

def harness(config, model, plans) -> tuple[Any, dict[tuple[str, str], str]]:
    """Return (RunStats, {(condition, item id): raw generation}) of one fresh run_eval into a temp dir."""
    from symdpo.eval.runner import PREDICTIONS_DIR, run_eval

    with tempfile.TemporaryDirectory() as tmp:  # a fresh run: the feature cache starts empty every time
        stats = run_eval(config, model, tmp, plans=plans)
        rows = [json.loads(line) for f in sorted((Path(tmp) / PREDICTIONS_DIR).glob("*.jsonl"))
                for line in f.read_text().splitlines()]
    return stats, {prediction_key(r, r["id"]): r["raw"] for r in rows}


def per_item_loop(config, model, plans) -> dict[tuple[str, str], str]:
    """Return {(condition, item id): raw generation} of the uncached one-context-at-a-time loop."""
    from symdpo.eval.images import ImageRef, load_ref
    from symdpo.eval.plan import conditions

    out = {}
    for plan in plans:
        gen = plan.task.generation  # the task's decoding settings, as run_eval passes them
        for cond in conditions(config, plan.task.name):
            for record in plan.eval.records:
                context, _ = plan.context(cond, record)
                context = [load_ref(x) if isinstance(x, ImageRef) else x for x in context]  # decoded anew each time
                [text] = model.generate([context], max_new_tokens=gen.max_new_tokens, num_beams=gen.num_beams,
                                        length_penalty=gen.length_penalty)
                out[prediction_key(cond.row(), record.id)] = text
    return out


def prediction_key(row: dict[str, Any], item_id: str) -> tuple[str, str]:
    """Return the (condition, item) key of a prediction."""
    cond = "/".join(str(row[k]) for k in ("task", "shots", "trial", "demo_images", "query_image"))
    return cond, item_id
