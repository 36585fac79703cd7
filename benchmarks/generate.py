"""Generated tokens/s: our Flamingo vs the reference open-flamingo 2.0.1, same weights, same decoding.

Workload of the issue: the tiny preset, batch 8, 3 images per sequence, a 512-token context, the evaluation
protocol's decoding (3-beam search, length_penalty 0, 20 new tokens), plus greedy beside it. The reference
is patched only so that its generate() runs on transformers 5 (its LM mixin demands an attention_mask that
transformers' generate() leaves out when there is no padding). Both are forced to produce all 20 tokens
(min_new_tokens) so they do the same amount of decoding.

    .venv/bin/python benchmarks/generate.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))
from openflamingo_reference import build_reference, load_reference, reference_checkpoint  # noqa: E402

from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo  # noqa: E402
from symdpo.models.flamingo.checkpoints import load_openflamingo_checkpoint  # noqa: E402
from symdpo.models.flamingo.presets import TINY_CLIP, TINY_LLAMA  # noqa: E402


def patch_reference_for_transformers5() -> None:
    mixin = load_reference().flamingo_lm.FlamingoLMMixin
    original = mixin.forward
    if getattr(original, "_patched", False):
        return

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return original(self, input_ids, attention_mask, **kwargs)

    forward._patched = True
    mixin.forward = forward


def workload(model, batch=8, images=3, context=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 400, (batch, context), generator=g)
    for k in range(images):  # an <image> at the start of each of 3 demonstration-sized chunks
        ids[:, k * (context // images)] = model.media_token_id
    size = model.vision.config.image_size
    return ids, torch.ones_like(ids), torch.randn(batch, images, 1, 3, size, size, generator=g)


def beam_kw(beams: int) -> dict:
    return {"length_penalty": 0.0} if beams > 1 else {}  # the protocol's setting; meaningless for greedy


def timed(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def compare(lm: dict, vision: dict, *, device: str = "cpu", dtype=torch.float32, batch: int = 8, images: int = 3,
            context: int = 512, new_tokens: int = 20, repeats: int = 3) -> list[tuple]:
    """Return (decoding, reference tok/s, ours tok/s, ratio, same tokens) for greedy and 3-beam, same weights."""
    torch.manual_seed(0)
    with torch.device(device):  # OpenFlamingo's perceiver/cross-attention sizes, which the reference hard-codes
        lmm = build_flamingo(FlamingoConfig(lm=lm, tokenizer="tiny", vision=vision))
        ours = lmm.model.eval()
        ref_lm = AutoModelForCausalLM.from_config(ours.lm.config)
    ref_lm.load_state_dict(ours.lm.state_dict())
    patch_reference_for_transformers5()
    with torch.device(device):
        ref = build_reference(ref_lm, ours.vision, media_token_id=ours.media_token_id, eoc_token_id=ours.eoc_token_id,
                              decoder_layers_attr_name=ours.decoder_layers_path, every=1).eval()
    with tempfile.TemporaryDirectory() as tmp:  # identical weights: the reference's checkpoint, loaded by our mapping
        torch.save(reference_checkpoint(ref), Path(tmp) / "checkpoint.pt")
        load_openflamingo_checkpoint(ours, Path(tmp) / "checkpoint.pt")
    ours.to(device, dtype)
    ref.to(device, dtype)
    ids, mask, vision_x = (t.to(device) for t in workload(ours, batch, images, context))
    vision_x = vision_x.to(dtype)
    pad = lmm.tokenizer.pad_token_id
    decode = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=pad)

    def sync(out):
        if device != "cpu":
            torch.cuda.synchronize()
        return out

    def run_ours(beams):
        with torch.no_grad():
            b, t = vision_x.shape[:2]
            media = ours.resample(ours.encode_images(vision_x.flatten(0, 2)), [t] * b)
            return sync(ours.generate(ids, mask, media, torch.full((b,), t, device=device), num_beams=beams, **decode,
                                      **beam_kw(beams)))

    def run_ref(beams):
        with torch.no_grad():
            out = ref.generate(vision_x, ids, attention_mask=mask, num_beams=beams, **decode, **beam_kw(beams))
            return sync(out[:, ids.shape[1]:])

    rows = []
    for beams, label in ((1, "greedy"), (3, "3-beam")):
        t_ref, out_ref = timed(lambda b=beams: run_ref(b), repeats)
        t_ours, out_ours = timed(lambda b=beams: run_ours(b), repeats)
        tokens = ids.shape[0] * new_tokens
        rows.append((label, tokens / t_ref, tokens / t_ours, t_ref / t_ours, torch.equal(out_ref, out_ours)))
    return rows


def print_rows(rows: list[tuple]) -> None:
    """Print the table of `compare`."""
    print(f"{'decoding':<8} {'reference tok/s':>16} {'ours tok/s':>11} {'ratio':>6}  same tokens")
    for label, r, o, ratio, same in rows:
        print(f"{label:<8} {r:16.1f} {o:11.1f} {ratio:5.2f}x  {same}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=20)
    args = ap.parse_args()
    n = args.new_tokens
    rows = compare(TINY_LLAMA, TINY_CLIP, new_tokens=n, repeats=args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 8, 3 images, 512-token context, {n} new tokens")
    print_rows(rows)
    print(f"ours vs reference generated tokens/s ratio (3-beam): {rows[1][3]:.2f}x")


if __name__ == "__main__":
    main()
