"""CIDEr-D: equal to pycocoevalcap's ``Cider().compute_score`` on the same tokens; Python tokens equal PTB's."""

from __future__ import annotations

import pytest
from pycocoevalcap.cider.cider import Cider

from symdpo.eval.metrics import cider as cider_mod
from symdpo.eval.metrics.cider import compute_cider, resolve_tokenizer, tokenize
from symdpo.eval.ptb import ptb_tokenize_caption

needs_java = pytest.mark.skipif(not cider_mod.java_available(), reason="PTBTokenizer needs java on PATH")

REFS = {
    1: ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave.", "Man surfing on a wave."],
    2: ["Two dogs play in the snow!", "A pair of dogs running through snow.", "Dogs playing outside in winter."],
    3: ["A cat sitting on a laptop, looking at the camera.", "A cat lies on a keyboard.", "The cat's on the computer."],
}
PREDS = {1: "a man surfing a big wave", 2: "two dogs running in the snow", 3: "a cat on a laptop"}

# Ordinary captions on which our tokenizer must give exactly PTB's tokens.
SIMPLE = [
    "A man riding a wave on top of a surfboard.",
    "Two dogs (a black one) play in the snow!",
    "The man's hat isn't red, it's blue.",
    'A sign that says "STOP" on it',
    "A black-and-white photo of a 1.5 m tall cat...",
    "People at a table; some eat: pizza?",
    "It's 3:00 p.m. in the U.S. now",
    "a [bracket] {brace} test -- with dashes - ok",
    "He said 'hello' to the cat's owner",
    "Don't can't won't I'm you're we've they'll he'd",
    "Mr. Smith and Dr. Who",
    "50,000 people at 5 o'clock",
    "what?!",
]


def _reference_score(tok: str) -> tuple[float, list[float]]:
    """Return pycocoevalcap's CIDEr computed directly on tokens made by ``tok``."""
    gts = tokenize(REFS, tok)
    res = tokenize({k: [v] for k, v in PREDS.items()}, tok)
    score, scores = Cider().compute_score(gts, res)
    return float(score), [float(s) for s in scores]


def test_python_tokens_match_pycocoevalcap_cider() -> None:
    result = compute_cider(PREDS, REFS, tokenizer="python")
    score, scores = _reference_score("python")
    assert result.tokenizer == "python"
    assert result.score == score
    assert [result.per_item[k] for k in REFS] == scores
    assert result.percent == pytest.approx(100 * score)
    assert 0 < result.score < 10


@needs_java
def test_ptb_tokens_match_pycocoevalcap_cider() -> None:
    result = compute_cider(PREDS, REFS, tokenizer="ptb")
    score, scores = _reference_score("ptb")
    assert result.tokenizer == "ptb"
    assert result.score == score
    assert [result.per_item[k] for k in REFS] == scores


@needs_java
def test_python_tokenizer_agrees_with_ptb() -> None:
    ptb = tokenize({i: [s] for i, s in enumerate(SIMPLE)}, "ptb")
    for i, sentence in enumerate(SIMPLE):
        assert ptb_tokenize_caption(sentence) == ptb[i][0], sentence


def test_python_tokenizer_examples() -> None:
    # Written out from PTBTokenizer's output (-preserveLines -lowerCase) and pycocoevalcap's punctuation list.
    assert ptb_tokenize_caption("The man's hat isn't red, it's blue.") == "the man 's hat is n't red it 's blue"
    assert ptb_tokenize_caption("Two dogs (a black one)!") == "two dogs -lrb- a black one -rrb-"
    assert ptb_tokenize_caption("It's 3:00 p.m. in the U.S.") == "it 's 3:00 p.m. in the u.s."


def test_empty_prediction_at_end_is_kept() -> None:
    preds = dict(PREDS)
    preds[3] = ""
    tok = resolve_tokenizer("auto")
    result = compute_cider(preds, REFS, tokenizer=tok)
    assert result.per_item[3] == 0.0


def test_single_item_scores_zero() -> None:
    # IDF comes from the evaluated references: with one image every n-gram has idf log(1/1) = 0.
    assert compute_cider({1: PREDS[1]}, {1: REFS[1]}, tokenizer="python").score == 0.0


def test_auto_falls_back_to_python_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cider_mod.shutil, "which", lambda name: None)
    assert resolve_tokenizer("auto") == "python"
    with pytest.raises(RuntimeError, match="java"):
        resolve_tokenizer("ptb")
    assert compute_cider(PREDS, REFS).tokenizer == "python"


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="missing predictions"):
        compute_cider({1: "x"}, REFS, tokenizer="python")
    with pytest.raises(ValueError, match="without reference"):
        compute_cider({1: "x", 2: "y"}, {1: ["a"], 2: []}, tokenizer="python")
    with pytest.raises(ValueError, match="unknown tokenizer"):
        resolve_tokenizer("spacy")  # type: ignore[arg-type]
