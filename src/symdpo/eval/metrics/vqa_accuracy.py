"""VQA accuracy: the VQAv2 leave-one-annotator-out score, with the reference answer normalisation.

Two variants (docs/metrics.md, "VQA accuracy"):

* default, ``official=False``: OpenFlamingo's port (``open_flamingo/eval/vqa_metric.py``), which *always*
  normalises the prediction and the ten answers. It produced the published OpenFlamingo and SymDPO numbers.
* ``official=True``: GT-Vision-Lab/VQA ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``, which normalises
  only when the (whitespace-stripped) answers disagree, so "Yes" scores 0 against ten "yes".

The normalisation tables and regular expressions below reproduce the reference **exactly, quirks included**,
because a "fixed" rule would give numbers that cannot be compared with the published ones. Each quirk is
marked ``QUIRK`` where it sits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Restores the apostrophe the annotators left out. Keys with capitals ("Im", "Ive", "Id've", "I'dve") can
# never match, since words are lower-cased first; QUIRK kept as in the reference.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    # QUIRK: this entry goes the wrong way (it *removes* the apostrophe); kept as in the reference.
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's",
    "somethingd": "something'd", "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
    "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip

# Number words up to ten become digits; "none" also becomes "0".
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})

# QUIRK: meant as a negative look-*behind* "(?<!\d)", but written "(?!<=\d)", a look-ahead for the literal
# "<=" followed by a digit, which can never hold where the next character is ".". So every "." that is not
# followed by a digit is removed, including one after a digit ("5." -> "5", "1.5" stays).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
# A thousands separator ("1,000") anywhere in the text switches every punctuation mark to plain deletion.
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
# Note what is *not* here: "." (handled by _PERIOD_STRIP), "'", ":", "#", "$", "%", "&", "*", "^", "~", "|".
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
# QUIRK: the reference calls ``periodStrip.sub("", text, re.UNICODE)``: the third positional argument of
# ``Pattern.sub`` is ``count``, so at most int(re.UNICODE) == 32 periods are removed.
_PERIOD_STRIP_COUNT = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """Return ``text`` with punctuation deleted or turned into spaces, as the reference's processPunctuation."""
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for p in _PUNCT:
        # QUIRK: the test looks at the *input* text, not the partly processed one; a mark next to a space
        # is deleted, a mark inside a word ("black-and-white") becomes a space.
        if (p + " " in text or " " + p in text) or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)


def process_digit_article(text: str) -> str:
    """Return ``text`` lower-cased, number words as digits, articles dropped, contractions restored."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def _clean_whitespace(text: str) -> str:
    """Return ``text`` with newlines and tabs as spaces, stripped (both references do this first)."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(text: str) -> str:
    """Return the fully normalised form of an answer or prediction (whitespace, punctuation, digits, articles)."""
    return process_digit_article(process_punctuation(_clean_whitespace(text)))


def vqa_accuracy(prediction: str, answers: Sequence[str], *, official: bool = False) -> float:
    """Return the VQA accuracy in [0, 1] of one prediction against its (usually ten) annotator answers."""
    if len(answers) == 0:
        raise ValueError("VQA accuracy needs at least one ground-truth answer; got none")
    gts = [_clean_whitespace(a) for a in answers]
    pred = _clean_whitespace(prediction)
    if not official or len(set(gts)) > 1:
        gts = [process_digit_article(process_punctuation(a)) for a in gts]
        pred = process_digit_article(process_punctuation(pred))
    # Leave one annotator out *by position* (the reference compares answer dicts that carry a unique
    # answer_id), then count matches among the others, capped at 3 = full credit.
    matches = [g == pred for g in gts]
    total = sum(matches)
    scores = [min(1.0, (total - m) / 3.0) for m in matches]
    return sum(scores) / len(scores)


def vqa_accuracies(
    predictions: Sequence[str], answers: Sequence[Sequence[str]], *, official: bool = False
) -> list[float]:
    """Return each question's VQA accuracy in [0, 1], in order (the per-item scores behind the mean)."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions but {len(answers)} answer lists")
    if not predictions:
        raise ValueError("VQA accuracy of an empty set is undefined")
    return [vqa_accuracy(p, a, official=official) for p, a in zip(predictions, answers, strict=True)]


def percent_of(items: Sequence[float]) -> float:
    """Return the mean of per-item accuracies in [0, 1] as a percent, summed in order as the references do."""
    return 100.0 * sum(items) / len(items)


def mean_vqa_accuracy(
    predictions: Sequence[str], answers: Sequence[Sequence[str]], *, official: bool = False
) -> float:
    """Return the mean VQA accuracy in percent (0-100) over a set of questions, as the references report it."""
    return percent_of(vqa_accuracies(predictions, answers, official=official))
