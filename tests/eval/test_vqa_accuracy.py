"""VQA accuracy: each normalisation rule, the leave-one-out average, and both reference variants.

Expected values are written by hand from the algorithm in GT-Vision-Lab/VQA
``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` and its port ``open_flamingo/eval/vqa_metric.py``.
The official file is Python 2 code (print statements), so it is not run here: its numbers below are worked
out by hand. OpenFlamingo's port is plain Python 3 and is installed with the test extras, so the default
variant is also compared with it directly.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from symdpo.eval.metrics.vqa_accuracy import (
    mean_vqa_accuracy,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("black-and-white", "black and white"),  # mark inside a word -> space
        ("hello , world", "hello world"),  # mark next to a space -> deleted (spaces then collapse)
        ("yes!", "yes"),
        ("(left)", "left"),
        ("1,000", "1000"),  # thousands separator
        ("2,5-3", "253"),  # a digit-comma-digit anywhere deletes every mark, "-" included
        ('say "hi"', "say hi"),
        ("a/b", "b"),  # "/" -> space, then the article "a" goes
        ("5.", "5"),  # period after a digit is removed too (the look-behind typo)
        ("1.5", "1.5"),  # period before a digit stays
        ("u.s.a.", "usa"),
        ("dog's", "dog's"),  # apostrophes are not punctuation here
        ("3:00", "3:00"),  # nor is ":"
        ("  yes\n", "yes"),
        ("\tno   way", "no way"),
    ],
)
def test_punctuation_and_whitespace(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_period_strip_removes_at_most_32_periods() -> None:
    # The reference passes re.UNICODE (== 32) as the positional `count` of Pattern.sub.
    assert process_punctuation("." * 40) == "." * 8


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("zero", "0"),
        ("ten dogs", "10 dogs"),
        ("eleven", "eleven"),  # the table stops at ten
        ("a dog", "dog"),
        ("The Cat", "cat"),
        ("an apple a day", "apple day"),
        ("dont", "don't"),
        ("isnt it", "isn't it"),
        ("Im", "im"),  # capitalised keys never match: text is lower-cased first
        ("somebody'd", "somebodyd"),  # the reversed entry
        ("oclock", "o'clock"),
    ],
)
def test_digits_articles_contractions(raw: str, expected: str) -> None:
    assert process_digit_article(raw) == expected


@pytest.mark.parametrize(
    ("k", "expected"),
    # k of 10 annotators match: ((10-k) * min(1, k/3) + k * min(1, (k-1)/3)) / 10
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
)
def test_leave_one_out_average(k: int, expected: float) -> None:
    answers = ["cat"] * k + ["dog"] * (10 - k)
    assert vqa_accuracy("cat", answers) == pytest.approx(expected)
    assert vqa_accuracy("cat", answers, official=True) == pytest.approx(expected)


def test_position_not_value_is_left_out() -> None:
    # Duplicated answers are distinct annotators: leaving out one "cat" still leaves the other.
    answers = ["cat", "cat"] + ["dog"] * 8
    assert vqa_accuracy("cat", answers) == pytest.approx(0.6)


def test_official_normalises_only_when_answers_disagree() -> None:
    # Hand-computed from vqaEval.py: ten identical answers -> no normalisation of either side.
    assert vqa_accuracy("Yes", ["yes"] * 10, official=True) == 0.0
    assert vqa_accuracy("yes.", ["yes"] * 10, official=True) == 0.0
    assert vqa_accuracy(" yes\n", ["yes"] * 10, official=True) == 1.0  # whitespace is always cleaned
    # OpenFlamingo's port always normalises.
    assert vqa_accuracy("Yes", ["yes"] * 10) == 1.0
    assert vqa_accuracy("yes.", ["yes"] * 10) == 1.0
    # Disagreeing answers: both normalise, "Two" -> "2" matches 3 of 10 -> 0.9.
    answers = ["2"] * 3 + ["3"] * 7
    assert vqa_accuracy("Two", answers, official=True) == pytest.approx(0.9)
    assert vqa_accuracy("Two", answers) == pytest.approx(0.9)
    # Answers that differ only before normalisation count as disagreeing, then match after it.
    answers = ["Yes"] + ["yes"] * 9
    assert vqa_accuracy("YES", answers, official=True) == 1.0


def test_mean_is_percent_and_validates() -> None:
    assert mean_vqa_accuracy(["cat", "dog"], [["cat"] * 10, ["cat"] * 10]) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="at least one"):
        vqa_accuracy("x", [])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        mean_vqa_accuracy(["a", "b"], [["a"]])


def _load_openflamingo_vqa_metric():
    """Return OpenFlamingo's vqa_metric module loaded by path (its package __init__ needs open_clip)."""
    spec = importlib.util.find_spec("open_flamingo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open-flamingo is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "eval" / "vqa_metric.py"
    mod_spec = importlib.util.spec_from_file_location("_of_vqa_metric", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


class _FakeVQA:
    def __init__(self, qa: dict) -> None:
        self.qa = qa

    def getQuesIds(self) -> list:  # noqa: N802 - the name VQAEval calls
        return list(self.qa)


def test_default_matches_openflamingo_port() -> None:
    of = _load_openflamingo_vqa_metric()
    rng = random.Random(0)
    vocab = ["yes", "Yes", "no", "two", "2", "a dog", "dog", "dog.", "black-and-white", "black and white",
             "1,000", "1000", "dont", "don't", "red, blue", "3.5", "u.s.a", " cat\n", "the cat", "none"]
    preds, answer_lists, gts, res = [], [], {}, {}
    for qid in range(300):
        answers = [rng.choice(vocab) for _ in range(10)]
        if qid % 3 == 0:
            answers = [answers[0]] * 10
        pred = rng.choice(vocab)
        preds.append(pred)
        answer_lists.append(answers)
        gts[qid] = {"question_type": "t", "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]}
        res[qid] = {"answer": pred}
    evaluator = of.VQAEval(_FakeVQA(gts), _FakeVQA(res), n=2)
    evaluator.evaluate(list(gts))
    for qid, (pred, answers) in enumerate(zip(preds, answer_lists, strict=True)):
        assert round(100 * vqa_accuracy(pred, answers), 2) == evaluator.evalQA[qid], (pred, answers)
