"""Fixtures for the data tests: small files in each official format, written by the tests themselves.

Helpers reach the tests through the ``data_helpers`` fixture: the suite runs in importlib import mode,
where a test folder's helper module is not importable by name.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

QUESTIONS = ["what color is the cat?", "what color is the car?", "is the man smiling?", "how many dogs are there?"]
ANSWERS = {0: ["white", "black", "orange"], 1: ["red", "blue", "white"], 2: ["yes", "no"], 3: ["1", "2", "3"]}


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30), fmt: str = "JPEG") -> None:
    """Write a small random image."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3))).save(path, fmt)


def coco_name(image_id: int, subtype: str = "train2014") -> str:
    """Return the VQAv2 path of a COCO image id."""
    return f"{subtype}/COCO_{subtype}_{image_id:012d}.jpg"


def vqa_json(n_images: int = 12, per_image: int = 3, seed: int = 0) -> tuple[dict, dict]:
    """Return (questions, annotations) dicts in the VQA format; annotations in shuffled order."""
    rng = random.Random(seed)
    qs, anns = [], []
    for img in range(n_images):
        image_id = 100 + img
        for j in range(per_image):
            t = (img + j) % len(QUESTIONS)
            qid = image_id * 10 + j
            answer = ANSWERS[t][(img * 7 + j) % len(ANSWERS[t])]
            ten = [answer] * 8 + [ANSWERS[t][0], ANSWERS[t][-1]]
            qs.append({"image_id": image_id, "question": QUESTIONS[t], "question_id": qid})
            anns.append({"question_type": " ".join(QUESTIONS[t].split()[:3]), "multiple_choice_answer": answer,
                         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                                     for k, a in enumerate(ten)],
                         "image_id": image_id, "answer_type": "other", "question_id": qid})
    rng.shuffle(anns)  # the reader must join by id, not by position
    return ({"info": {}, "data_subtype": "train2014", "questions": qs},
            {"info": {}, "data_subtype": "train2014", "annotations": anns})


@pytest.fixture
def data_helpers() -> SimpleNamespace:
    """The helper functions above, for tests."""
    return SimpleNamespace(write_image=write_image, coco_name=coco_name, vqa_json=vqa_json)


@pytest.fixture
def vqa_files(tmp_path: Path) -> dict:
    """A VQAv2-format fixture: questions + annotations files and a COCO-style image folder."""
    qs, anns = vqa_json()
    root = tmp_path / "coco"
    for q in qs["questions"]:
        p = root / coco_name(q["image_id"])
        if not p.exists():
            write_image(p, q["image_id"])
    (tmp_path / "q.json").write_text(json.dumps(qs))
    (tmp_path / "a.json").write_text(json.dumps(anns))
    return {"questions": tmp_path / "q.json", "annotations": tmp_path / "a.json", "image_root": root,
            "q": qs, "a": anns, "dir": tmp_path, "coco_name": coco_name, "write_image": write_image}
