"""CIDEr-D through pycocoevalcap, on PTB tokens (Java) or on our pure-Python stand-in when Java is absent.

pycocoevalcap's ``Cider`` computes the IDF from the references of the evaluated set itself, so a score
depends on the subset scored and a one-image set scores 0 (docs/metrics.md, "CIDEr-D"). Scores are reported as
pycocoevalcap returns them (about 0-10; OpenFlamingo reports ``100 *`` this, see ``CiderResult.percent``).
"""

from __future__ import annotations

import shutil
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from symdpo.eval.ptb import ptb_tokenize_caption

TokenizerName = Literal["auto", "ptb", "python"]


@dataclass(frozen=True)
class CiderResult:
    """A corpus CIDEr-D score, the per-item scores and the tokenizer that produced the tokens."""

    score: float
    per_item: dict[Hashable, float] = field(repr=False)
    tokenizer: Literal["ptb", "python"]

    @property
    def percent(self) -> float:
        """Return the score times 100, the scale OpenFlamingo and SymDPO publish."""
        return 100.0 * self.score


def java_available() -> bool:
    """Return whether a ``java`` executable is on PATH (needed by pycocoevalcap's PTBTokenizer)."""
    return shutil.which("java") is not None


def resolve_tokenizer(name: TokenizerName = "auto") -> Literal["ptb", "python"]:
    """Return the tokenizer to use: ``ptb`` when asked or when ``auto`` finds Java, else ``python``."""
    if name == "auto":
        return "ptb" if java_available() else "python"
    if name == "ptb" and not java_available():
        raise RuntimeError("tokenizer='ptb' needs `java` on PATH; install a JRE or use tokenizer='python'")
    if name not in ("ptb", "python"):
        raise ValueError(f"unknown tokenizer {name!r}; expected 'auto', 'ptb' or 'python'")
    return name


def tokenize(
    captions: Mapping[Hashable, Sequence[str]], tokenizer: Literal["ptb", "python"]
) -> dict[Hashable, list[str]]:
    """Return each item's captions tokenised as pycocoevalcap's PTBTokenizer (or our stand-in) does."""
    if tokenizer == "python":
        return {k: [ptb_tokenize_caption(c) for c in caps] for k, caps in captions.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = PTBTokenizer().tokenize({k: [{"caption": c} for c in caps] for k, caps in captions.items()})
    # PTBTokenizer rstrips its input, so empty captions at the very end come back missing: restore them.
    return {k: (out.get(k, []) + [""] * len(caps))[: len(caps)] for k, caps in captions.items()}


def compute_cider(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    *,
    tokenizer: TokenizerName = "auto",
) -> CiderResult:
    """Return the CIDEr-D of one predicted caption per item against that item's reference captions."""
    from pycocoevalcap.cider.cider import Cider

    if set(predictions) != set(references):
        missing = sorted(map(str, set(references) - set(predictions)))[:5]
        extra = sorted(map(str, set(predictions) - set(references)))[:5]
        raise ValueError(f"predictions and references differ: missing predictions {missing}, unknown ids {extra}")
    if not predictions:
        raise ValueError("CIDEr of an empty set is undefined")
    empty = [str(k) for k, refs in references.items() if len(refs) == 0]
    if empty:
        raise ValueError(f"items without reference captions: {empty[:5]}")
    which = resolve_tokenizer(tokenizer)
    keys = list(references)
    gts = tokenize({k: list(references[k]) for k in keys}, which)
    res = tokenize({k: [predictions[k]] for k in keys}, which)
    score, scores = Cider().compute_score(gts, res)
    return CiderResult(float(score), {k: float(s) for k, s in zip(keys, scores, strict=True)}, which)
