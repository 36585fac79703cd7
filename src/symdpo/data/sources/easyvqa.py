"""easy-VQA, read offline from the installed PyPI package (``easy_vqa/data/{train,test}``)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

from symdpo.data.errors import DataError
from symdpo.data.sources.types import VQAExample, derived_question_type


def easyvqa_root(split: str = "train") -> Path:
    """Return the package's folder for ``split`` (holding ``questions.json`` and ``images/``)."""
    if split not in ("train", "test"):
        raise DataError("easy-vqa", f"unknown split {split!r} (train or test)")
    spec = importlib.util.find_spec("easy_vqa")
    if spec is None or spec.origin is None:
        raise DataError("easy-vqa", "package not installed (pip install easy-vqa)")
    return Path(spec.origin).parent / "data" / split


EASYVQA_SHAPES = frozenset({"circle", "rectangle", "triangle"})  # the package's answers.txt: yes, no, shapes, colors


def easyvqa_answer_type(answer: str) -> str:
    """Return the easy-VQA answer type of ``answer``: "yes/no", "shape" or "color" (its closed answer set)."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "shape" if answer in EASYVQA_SHAPES else "color"


def read_easyvqa(split: str = "train") -> Iterator[VQAExample]:
    """Yield the easy-VQA examples of ``split``; image paths are relative to ``easyvqa_root(split)``."""
    path = easyvqa_root(split) / "questions.json"
    rows = json.loads(path.read_text())
    for i, row in enumerate(rows):
        question, answer, image_id = row
        # one annotator per question: the single answer is the whole answer list
        yield VQAExample(f"{split}-{i}", f"images/{image_id}.png", question, (answer,), answer,
                         derived_question_type(question), easyvqa_answer_type(answer))
