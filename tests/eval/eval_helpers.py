"""Helpers of the evaluation tests (on the path through pyproject's pytest ``pythonpath``)."""

from __future__ import annotations


def error_line(result) -> str:
    """Return the one stderr line of a failed command (and check there is no traceback).

    Exit status 2 for a bad option value, 1 for bad input data (``symdpo.errors``)."""
    assert result.exit_code in (1, 2), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def pycocoevalcap_cider(predictions: dict, references: dict) -> tuple[float, list[float]]:
    """Return pycocoevalcap's CIDEr-D of raw captions, end to end as its ``COCOEvalCap.evaluate`` computes it.

    Its own PTBTokenizer (Java) tokenizes the references and the predictions separately, then ``Cider`` scores
    them; nothing of symdpo takes part. Per-item scores come in the order of ``references``' keys.
    """
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = PTBTokenizer().tokenize({k: [{"caption": c} for c in caps] for k, caps in references.items()})
    res = PTBTokenizer().tokenize({k: [{"caption": predictions[k]}] for k in references})
    score, scores = Cider().compute_score(gts, res)
    return float(score), [float(s) for s in scores]
