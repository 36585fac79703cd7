"""VL-ICL Bench's scoring rules (its ``evals/eval.py``), quirks included, each quirk behind a named fix.

Parity (the default) scores exactly as the published evaluator:

* truncation, shared by every task: strip whitespace; cut at the first newline; with none, cut at the first
  "." unless it is the first character. The cut comes after the strip, so "dax ." keeps "dax " (trailing
  space), "3.5" becomes "3" and "WWW.X.COM" becomes "WWW";
* textocr, open_mi, clevr: case-insensitive equality of the whole truncated text with the answer (no number
  is extracted for clevr: "There are 3" is wrong);
* operator tasks: the first ``\\d+`` of the truncated text (or "" without one) must equal the answer, so a
  negative answer (A - B with A < B) can never score;
* matching_mi: gold "yes" is right when "yes" appears anywhere in the lowercased text, gold "no" when it does
  not (empty or garbage output counts as "no").

``VLICLFix`` names the corrections (``--vlicl-fixes``); each changes one rule and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from symdpo.eval.metrics.vqa_accuracy import percent_of

# signed-numbers: operator answers may carry a minus sign (-?\d+);
# strict-yes-no: matching_mi's first word must be "yes" or "no" (letters only, any case);
# keep-decimals: "." cuts only where it ends a sentence (followed by a space or the end), so 3.5 and WWW.X.COM stay;
# strip-after-cut: whitespace before the cut point is stripped too ("dax ." -> "dax")
VLICLFix = Literal["signed-numbers", "strict-yes-no", "keep-decimals", "strip-after-cut"]

_SENTENCE_END = re.compile(r"\.(?=\s|$)")


def truncate(prediction: str, fixes: Collection[str] = ()) -> str:
    """Return the prediction cut as VL-ICL's evaluator cuts it before any comparison (see the module doc)."""
    text = prediction.strip()
    cut = text.find("\n")
    if cut <= 0:  # no newline (after the strip, none can be first)
        if "keep-decimals" in fixes:
            m = _SENTENCE_END.search(text)
            cut = m.start() if m else -1
        else:
            cut = text.find(".")
    if cut > 0:
        text = text[:cut]
    return text.strip() if "strip-after-cut" in fixes else text


def score_one(folder: str, prediction: str, answer: Any, fixes: Collection[str] = ()) -> int:
    """Return 1 when ``prediction`` is right for ``answer`` under VL-ICL's rule for dataset ``folder``, else 0."""
    text = truncate(prediction, fixes)
    if folder == "matching_mi":
        gold = str(answer).lower()
        if "strict-yes-no" in fixes:
            first = re.match(r"[^\W\d_]+", text.lower())
            return int(first is not None and first.group() == gold)
        return int(("yes" in text.lower()) == (gold == "yes"))
    if folder.startswith("operator_induction"):
        m = re.search(r"-?\d+" if "signed-numbers" in fixes else r"\d+", text)
        text = m.group() if m else ""
    return int(text.lower() == str(answer).lower())


def vlicl_metric(folder: str) -> Any:
    """Return the task's metric: (predictions by id, records, fixes) -> {"score": accuracy in percent, ...}."""

    def metric(predictions: Mapping[str, str], records: Sequence[Any], *, vlicl_fixes: Collection[str] = ()) -> dict:
        """Return {"score": percent correct, "metric": ..., "per_item": 0/1 per record, "fixes": [...]}."""
        missing = [r.id for r in records if r.id not in predictions]
        if missing:
            raise KeyError(f"{len(missing)} records have no prediction, e.g. {missing[:3]}")
        items = [float(score_one(folder, predictions[r.id], r.answer, vlicl_fixes)) for r in records]
        name = "vlicl-parity" if not vlicl_fixes else "vlicl+" + "+".join(sorted(vlicl_fixes))
        return {"score": percent_of(items) if items else 0.0, "metric": name, "per_item": items}

    return metric
