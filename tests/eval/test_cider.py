"""CIDEr-D compared with pycocoevalcap end to end: raw captions through its own PTBTokenizer (Java) and ``Cider``,
as its ``COCOEvalCap.evaluate`` does (``eval_helpers.pycocoevalcap_cider``). Both of our tokenizer paths must give
its score exactly; the pure-Python tokenizer must give PTB's tokens (and, without Java, tokens written out by hand
from PTB's output)."""

from __future__ import annotations

import pytest
from eval_helpers import pycocoevalcap_cider

from symdpo.eval.metrics import cider as cider_mod
from symdpo.eval.metrics.cider import compute_cider, resolve_tokenizer, tokenize
from symdpo.eval.ptb import ptb_tokenize_caption

needs_java = pytest.mark.skipif(not cider_mod.java_available(), reason="PTBTokenizer needs java on PATH")

REFS = {
    1: ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave.", "Man surfing on a wave."],
    2: ["Two dogs play in the snow!", "A pair of dogs running through snow.", "Dogs playing outside in winter."],
    3: ["A cat sitting on a laptop, looking at the camera.", "A cat lies on a keyboard.", "The cat's on the computer."],
    4: ["A red double-decker bus on a city street.", "A bus drives down the road.", "The big red bus (route 9)."],
    5: ["Two people eat pizza at a table.", "A couple shares a pizza; it's late.", "Friends eating pizza, indoors."],
}
PREDS = {1: "A man surfing a big wave.", 2: "Two dogs running in the snow!", 3: "a cat on a laptop",
         4: "A red bus on a street", 5: "people eating pizza at a table"}

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


@needs_java
@pytest.mark.parametrize("tokenizer", ["ptb", "python"])
def test_cider_equals_pycocoevalcap_end_to_end(tokenizer) -> None:
    result = compute_cider(PREDS, REFS, tokenizer=tokenizer)
    score, scores = pycocoevalcap_cider(PREDS, REFS)
    assert result.tokenizer == tokenizer
    assert result.score == pytest.approx(score, abs=1e-12)
    assert [result.per_item[k] for k in REFS] == pytest.approx(scores, abs=1e-12)
    assert result.percent == pytest.approx(100 * score)
    assert len(set(scores)) == len(scores) and min(scores) > 0  # distinct, non-trivial per-item scores


def test_tokenize_ptb_and_python_paths_agree_with_hand_tokens() -> None:
    # the Python path on its own (no Java needed): tokens written out from PTBTokenizer's output
    assert tokenize({1: ["A Man (riding) a wave!"]}, "python") == {1: ["a man -lrb- riding -rrb- a wave"]}


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
