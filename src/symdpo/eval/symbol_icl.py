"""Symbol-ICL probes: can the model pick the right symbol, which only the demonstration images reveal?

A probe is a SymDPO symbol record built from a held-out split (`symdpo.data.symbols`): demonstrations whose
answers are replaced by meaningless symbols, and a query whose answer is the symbol of the demonstrations
that share its hidden answer. The model scores every symbol shown in the context as the answer (mean
log-prob per token, so that longer symbols are not penalised) and picks the best; accuracy is the share of
probes where that is the chosen symbol. Chance is 1 / (number of distinct symbols in the context).

With ``demo_images="blank"`` every demonstration image is replaced by a blank one (the query keeps its
image): a model that uses the demonstration images falls to chance; one that ignores them does not move.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

from symdpo.data.images import load_image
from symdpo.data.records import PreferenceRecord, render_record
from symdpo.eval.images import blank_image
from symdpo.models.prompts import OPENFLAMINGO, to_interleaved


def probe_contexts(record: PreferenceRecord, image_root: Path, *, demo_images: str = "real", formats=None):
    """Return (context, candidate symbols, index of the right one) of one probe, written in ``formats``."""
    text, paths, _, _ = render_record(record, formats or OPENFLAMINGO)
    images = []
    for i, rel in enumerate(paths):
        blank = demo_images == "blank" and i != record.query.image
        images.append(blank_image() if blank else _load(str(image_root), rel))
    candidates = sorted(set(record.symbols.values()))
    return to_interleaved(text, images), candidates, candidates.index(record.chosen)


@lru_cache(maxsize=4096)
def _load(root: str, rel: str):
    return load_image(root, rel)


@torch.no_grad()
def symbol_accuracy(model, records: Sequence[PreferenceRecord], image_root: str | Path, *,
                    demo_images: str = "real", batch_size: int = 32) -> dict:
    """Return {"accuracy", "chance", "n"} of picking the chosen symbol among the context's symbols."""
    formats = {kind: model.prompt_format(kind) for kind in ("vqa", "caption")}  # the model's own, as in training
    rows: list[tuple[int, list, str]] = []  # (probe, context, candidate answer)
    truth, n_candidates = [], []
    for record in records:
        if record.kind != "symbol":
            continue
        ctx, candidates, right = probe_contexts(record, Path(image_root), demo_images=demo_images, formats=formats)
        truth.append(right)
        n_candidates.append(len(candidates))
        rows += [(len(truth) - 1, ctx, c + model.end_of_chunk) for c in candidates]
    scores: list[list[float]] = [[] for _ in truth]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        logps, counts = model.answer_logps([r[1] for r in chunk], [r[2] for r in chunk])
        for (probe, _, _), lp, n in zip(chunk, logps.tolist(), counts.tolist(), strict=True):
            scores[probe].append(lp / max(n, 1))
    correct = [max(range(len(s)), key=s.__getitem__) == t for s, t in zip(scores, truth, strict=True)]
    n = len(correct)
    return {
        "accuracy": 100.0 * sum(correct) / n if n else float("nan"),
        "chance": 100.0 * sum(1 / c for c in n_candidates) / n if n else float("nan"),
        "n": n,
    }
