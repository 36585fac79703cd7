"""How fast does a tiny Flamingo learn to match a query image to demonstration images? Two gate inits side by side.

    .venv/bin/python benchmarks/symbol_matching.py                  # ~4 min on 2 CPU cores
    python benchmarks/symbol_matching.py --device cuda --steps 2500 # a GPU; first checks one batch against the CPU

This is the skill the demo's SymDPO stage has to teach, in its easiest form: each demonstration is a
solid-colour image followed by a one-token symbol, and the query's colour is one of the demonstrations'
("<image>Question:what color is the shape? Short answer:osk<|endofchunk|>" ×2–4, then a query). The
only way past "any symbol of the context" is to compare the query image with the demonstration images.

A tiny Flamingo (the ``tiny`` preset's shapes, tied embeddings, LM init std 0.1) is trained from scratch
with supervised answer loss, once per initial value of the cross-attention gates; every ``--every`` steps it
is scored on held-out contexts (pick the best of the context's symbols) with real and with blank
demonstration images. A model that matches images scores above chance with real images and falls to chance
with blank ones.

Measured (2026-11-27), 1000 steps, seed 0, this 2-core CPU (torch 2.13): gates from 0 vs 0.1 gave 40.5% vs
41.0% with the tokenizer's symbols and 37.5% vs 42.0% with ``--symbols learned-run`` (chance 41.7%). What
these single runs do not show: whether matching emerges is a matter of luck. An H200 (torch 2.11) learned it
with gates from 0 and 0.1 (76% and 71% at step 500, 92% and 91% at 1000, 100% at 2500; the learned-run
symbols), and so did one CPU run with gates from 0 (61% at step 500, 87% at 800). The same CPU command run
again gave the same losses to step 100 and then drifted (1.394 vs 1.398 at step 200: these CPU runs are not
bit-reproducible; cause not traced, two 150-step runs without evaluations matched exactly), and that run
stayed at chance to step 800. About 20 other CPU
runs (9 seeds, gates 0.05 to 0.1, LM init 0.05 to 0.2, other widths, heads, depths) stayed at chance, and so
did the H200 with gates at 0.5 or 1, LM init 0.02, width 128 or 2 layers. torch 2.11 on this CPU gives the
same numbers as torch 2.13 to the last digit printed, so nothing here points to a difference between the
CUDA and the CPU code paths; on a GPU, the ``parity`` line printed first checks one batch against the CPU.
"""

from __future__ import annotations

import argparse
import random

import torch
from PIL import Image

from common import timed
from symdpo.eval.images import blank_image
from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo, load_tokenizer
from symdpo.models.flamingo.presets import TINY_CLIP, TINY_LLAMA, TINY_XATTN

COLOURS = [(255, 0, 0), (0, 0, 255), (0, 200, 0), (255, 255, 0), (128, 0, 128), (0, 200, 200), (128, 128, 128), (0, 0, 0)]
QUESTION = "Question:what color is the shape? Short answer:"
# the 32 one-token symbols of the runs that learned (this CPU with gates at 0; the H200 with gates at 0 and 0.1)
LEARNED_RUN_SYMBOLS = ("osk uth usk oux aim aix oun bri plou gou zai glo kla klu bro trou tro fou mou zou thu sko kle "
                       "brou stu shu pla dri vou klai gla drou").split()


def is_one_token(tokenizer, symbol: str) -> bool:
    """Return whether ``tokenizer`` keeps ``symbol`` as one token right after "answer:"."""
    return len(tokenizer(QUESTION + symbol)["input_ids"]) == len(tokenizer(QUESTION)["input_ids"]) + 1


def one_token_symbols(tokenizer, n: int = 32) -> list[str]:
    """Return ``n`` pseudo-syllables that the tiny tokenizer keeps as one token right after "answer:"."""
    from symdpo.pseudowords import builtin_symbols

    base = len(tokenizer(QUESTION)["input_ids"])
    out: list[str] = []
    for word in builtin_symbols(2048):  # their first BPE pieces: "osk", "kla", ... (the words are 2+ tokens)
        piece = tokenizer.decode(tokenizer(QUESTION + word)["input_ids"][base])
        if (piece.isalpha() and len(piece) >= 3 and piece not in out and piece not in QUESTION
                and is_one_token(tokenizer, piece)):
            out.append(piece)
    if len(out) < n:
        raise SystemExit(f"only {len(out)} one-token symbols")
    return out[:n]


def symbol_list(tokenizer, which: str) -> list[str]:
    """Return the 32 one-token symbols named by ``which``: "tokenizer" (derived) or "learned-run" (fixed)."""
    if which == "tokenizer":
        return one_token_symbols(tokenizer)
    split = [s for s in LEARNED_RUN_SYMBOLS if not is_one_token(tokenizer, s)]
    if split:
        raise SystemExit(f"this tokenizer splits {split} into several tokens: use --symbols tokenizer")
    return list(LEARNED_RUN_SYMBOLS)


def sample(rng: random.Random, symbols: list[str], images: list, end: str, blank_demos: bool = False):
    """Return (context, right symbol, the context's symbols) of one solid-colour symbol context."""
    k = rng.randint(2, 3)
    colours, names = rng.sample(range(len(images)), k), rng.sample(symbols, k)
    order = colours + [rng.choice(colours)] * rng.randint(0, 1)
    rng.shuffle(order)
    ctx: list = []
    for c in order:
        ctx += [blank_image() if blank_demos else images[c], f"{QUESTION}{names[colours.index(c)]}{end}"]
    query = rng.choice(colours)
    return ctx + [images[query], QUESTION], names[colours.index(query)], names


@torch.no_grad()
def accuracy(model, symbols, images, n: int, blank_demos: bool) -> float:
    """Return the % of ``n`` held-out contexts where the right symbol scores best among the context's."""
    rng, right = random.Random(12345), 0
    model.model.eval()
    for _ in range(n):
        ctx, answer, names = sample(rng, symbols, images, model.end_of_chunk, blank_demos)
        logps, _ = model.answer_logps([ctx] * len(names), [s + model.end_of_chunk for s in names])
        right += names[int(logps.argmax())] == answer
    return 100.0 * right / n


def config(init_std: float, seed: int) -> FlamingoConfig:
    """Return the tiny Flamingo's config: the ``tiny`` preset's shapes, tied embeddings, LM init std ``init_std``."""
    lm = dict(TINY_LLAMA, tie_word_embeddings=True, initializer_range=init_std)
    return FlamingoConfig(lm=lm, tokenizer="tiny", vision=TINY_CLIP, cross_attn_every_n_layers=1, seed=seed,
                          **TINY_XATTN)


def build(init_std: float, gate: float, seed: int):
    """Return a fresh tiny Flamingo (tied embeddings, LM init std ``init_std``, all gates set to ``gate``)."""
    model = build_flamingo(config(init_std, seed))
    with torch.no_grad():
        for name, p in model.model.named_parameters():
            if name.startswith("xattn.") and name.endswith("_gate"):
                p.fill_(gate)
    return model


def parity(device: str, args) -> None:
    """Print how far one batch's loss and gradients on ``device`` are from the same computation on the CPU."""
    model = build(args.init, 0.5, args.seed)  # gates open, so that the cross-attention is exercised
    symbols = one_token_symbols(model.tokenizer)
    images = [Image.new("RGB", (64, 64), c) for c in COLOURS]
    rng = random.Random(0)
    batch = [sample(rng, symbols, images, model.end_of_chunk) for _ in range(16)]
    results = []
    for dev in ("cpu", device):
        model.model.to(dev)
        model.model.zero_grad()
        logps, counts = model.answer_logps([b[0] for b in batch], [b[1] + model.end_of_chunk for b in batch])
        loss = -(logps.sum() / counts.sum())
        loss.backward()
        grads = {n: p.grad.detach().cpu().clone() for n, p in model.model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
    (l0, g0), (l1, g1) = results
    worst = max(((g1[n] - g0[n]).norm() / g0[n].norm().clamp_min(1e-12)).item() for n in g0)
    print(f"parity, {device} vs cpu on one batch: loss {l1:.6f} vs {l0:.6f}; worst relative gradient difference {worst:.1e}")


def train(gate: float, args) -> list[tuple[int, float, float, float]]:
    """Return (step, train loss, accuracy real, accuracy blank) every ``args.every`` steps for one gate init."""
    model = build(args.init, gate, args.seed)
    model.model.to(args.device)
    model.model.requires_grad_(True)
    model.model.vision.requires_grad_(False)
    symbols = symbol_list(model.tokenizer, args.symbols)
    images = [Image.new("RGB", (64, 64), c) for c in COLOURS]
    params = [p for p in model.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    rng, losses, rows = random.Random(args.seed), [], []
    for step in range(1, args.steps + 1):
        model.model.train()
        model.model.vision.eval()
        batch = [sample(rng, symbols, images, model.end_of_chunk) for _ in range(16)]
        logps, counts = model.answer_logps([b[0] for b in batch], [b[1] + model.end_of_chunk for b in batch])
        loss = -(logps.sum() / counts.sum())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if step % args.every == 0 or step == args.steps:
            real, blank = (accuracy(model, symbols, images, args.probes, b) for b in (False, True))
            rows.append((step, sum(losses[-args.every:]) / len(losses[-args.every:]), real, blank))
            print(f"  gates {gate}: step {step:5d}  loss {rows[-1][1]:.3f}  accuracy {real:5.1f}%  "
                  f"blank demo images {blank:5.1f}%", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--probes", type=int, default=200, help="held-out contexts per evaluation")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--gates", type=float, nargs=2, default=[0.1, 0.0],
                   help="the two initial values of the cross-attention gates compared (tanh of it is applied)")
    p.add_argument("--init", type=float, default=0.1, help="LM init std")
    p.add_argument("--symbols", choices=["tokenizer", "learned-run"], default="tokenizer",
                   help="the symbol list: derived from the tokenizer, or the fixed list of the runs that learned")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    chance = 100.0 * (1 / 2 + 1 / 3) / 2
    import platform

    import tokenizers
    import transformers

    print(f"solid-colour symbol contexts, {args.steps} steps of 16, device {args.device}; chance {chance:.1f}%; "
          f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"tokenizers {tokenizers.__version__}")
    tok = load_tokenizer(config(args.init, args.seed))
    print("one demonstration, as tokens:", [tok.decode([i]) for i in tok(f"<image>{QUESTION}lon<|endofchunk|>")["input_ids"]])
    if args.device != "cpu":
        parity(args.device, args)
    final = {}
    for gate in args.gates:
        seconds, rows = timed(lambda gate=gate: train(gate, args))
        final[gate] = rows[-1]
        print(f"  gates {gate}: {seconds:.0f} s")
    (a, b) = args.gates
    print(f"symbol-matching accuracy after {args.steps} steps, gates from {b} vs {a}: "
          f"{final[b][2]:.1f}% vs {final[a][2]:.1f}% (blank demo images {final[b][3]:.1f}% vs {final[a][3]:.1f}%; "
          f"chance {chance:.1f}%)")


if __name__ == "__main__":
    main()
