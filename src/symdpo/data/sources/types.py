"""The record types every reader returns, whatever the on-disk format."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VQAExample:
    """One question about one image, with its annotator answers."""

    id: str  # question id, unique within a source
    image: str  # path relative to the image root, POSIX separators
    question: str
    answers: tuple[str, ...]  # all annotator answers, in file order
    answer: str  # the canonical answer: multiple_choice_answer when given, else the most frequent
    question_type: str
    # VQAv2 / OK-VQA annotations' answer_type (yes/no, number, other); easy-VQA: yes/no, shape, color; else None
    answer_type: str | None = None


@dataclass(frozen=True, slots=True)
class CaptionExample:
    """One image with its reference captions."""

    id: str
    image: str
    captions: tuple[str, ...]
    split: str


def most_frequent(answers: tuple[str, ...] | list[str]) -> str:
    """Return the most frequent answer, ties broken by first occurrence."""
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    return max(counts, key=counts.__getitem__)  # max keeps the first of equal counts (dict order)


_WORD = re.compile(r"[a-z0-9]+")


def derived_question_type(question: str) -> str:
    """Return the first two lower-cased words of a question, for sources without a question type."""
    return " ".join(_WORD.findall(question.lower())[:2])
