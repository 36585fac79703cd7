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

import torch

from common import compare_generation, headline, print_generation
from symdpo.models.flamingo.presets import TINY_CLIP, TINY_LLAMA


def main() -> None:
    """Print the greedy and 3-beam table and, last, the 3-beam tokens/s ratio."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=20)
    args = ap.parse_args()
    n = args.new_tokens
    rows = compare_generation(TINY_LLAMA, TINY_CLIP, new_tokens=n, repeats=args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 8, 3 images, 512-token context, {n} new tokens")
    print_generation(rows)
    headline("ours vs reference generated tokens/s", rows[1][3], "3-beam")


if __name__ == "__main__":
    main()
