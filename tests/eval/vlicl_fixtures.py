"""Writes small VL-ICL folders in the published layout (/work/shared/VL-ICL.md section 1, from the HF card and
raw JSON): ``{task}/query.json`` and ``{task}/support.json`` (one JSON list each, ``image`` always a list of
paths relative to the folder and starting with the task folder), images under ``{task}/query/`` and
``{task}/support/``. Images are drawn here with PIL: operator images show "A ? B", interleaved ones one digit.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "x": lambda a, b: a * b}
QUESTION = "What is the result of the following mathematical expression?"


def _draw(path: Path, text: str, *, size: int = 64, box: bool = False, color=(255, 255, 255)) -> None:
    """Write a small RGB PNG showing ``text`` (with a red box around it when ``box``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (size, size), color)
    d = ImageDraw.Draw(im)
    d.text((8, size // 2 - 6), text, fill=(0, 0, 0))
    if box:
        d.rectangle((4, size // 2 - 10, size - 4, size // 2 + 10), outline=(255, 0, 0), width=2)
    im.save(path)


def _dump(path: Path, records: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=4))


def write_textocr(root: Path, n_support: int = 6, n_query: int = 3) -> None:
    """textocr: one image each, the text in a red box; question constant, answer the text."""
    words = ["STOP", "WWW.X.COM", "Cafe", "3.5", "exit", "OPEN", "ABC", "Zoo", "42"]
    for split, n in (("support", n_support), ("query", n_query)):
        recs = []
        for i in range(n):
            rel = f"textocr/{split}/{split}_{i}.png"
            word = words[(i + (0 if split == "support" else 5)) % len(words)]
            _draw(root / rel, word, box=True)
            recs.append({"id": f"textocr_{split}_{i}", "img_id": f"img{i}", "width": 64, "height": 64,
                         "ann_id": f"ann{i}", "box": [4, 22, 56, 20], "points": [4, 22, 60, 22, 60, 42, 4, 42],
                         "area": 1120, "image": [rel], "question": "What text is shown in the red box?",
                         "answer": word})
        _dump(root / "textocr" / f"{split}.json", recs)


def _operator(root: Path, folder: str, interleaved: bool) -> None:
    """Operator induction: support images A?B with answer [A+B, A-B, AxB]; queries with an operator."""
    support = []
    for a, b in [(0, 1), (2, 3), (4, 2), (5, 5), (7, 1), (3, 6), (8, 2), (1, 9)]:
        support.append({"id": f"{folder}_support_{a}_{b}", "image": _op_images(root, folder, "support", a, b, interleaved),
                        "question": QUESTION, "answer": [a + b, a - b, a * b]})
    query = []
    for i, (a, b, op) in enumerate([(2, 7, "+"), (9, 4, "-"), (3, 3, "x"), (1, 6, "-")]):  # 1-6: a negative answer
        query.append({"id": f"{folder}_query_{i}", "image": _op_images(root, folder, "query", a, b, interleaved),
                      "question": QUESTION, "answer": OPS[op](a, b), "operator": op})
    _dump(root / folder / "support.json", support)
    _dump(root / folder / "query.json", query)


def _op_images(root: Path, folder: str, split: str, a: int, b: int, interleaved: bool) -> list[str]:
    if interleaved:
        rels = [f"{folder}/{split}/{a}_{b}_0.png", f"{folder}/{split}/{a}_{b}_1.png"]
        for rel, digit in zip(rels, (a, b), strict=True):
            _draw(root / rel, str(digit))
        return rels
    rel = f"{folder}/{split}/{a}_{b}.png"
    _draw(root / rel, f"{a} ? {b}")
    return [rel]


def write_operator(root: Path) -> None:
    _operator(root, "operator_induction", interleaved=False)


def write_operator_interleaved(root: Path) -> None:
    _operator(root, "operator_induction_interleaved", interleaved=True)


def write_clevr(root: Path) -> None:
    """clevr: one image, question "attribute: value", answer an int count."""
    qs = ["size: small", "material: rubber", "shape: cube", "color: red"]
    for split, n in (("support", 6), ("query", 3)):
        recs = []
        for i in range(n):
            rel = f"clevr/{split}/CLEVR_{split}_{i:06d}.png"
            _draw(root / rel, "o" * (i % 4 + 1), color=(128, 128, 128 + 20 * i))
            recs.append({"id": f"clevr_{split}_{i}", "image": [rel], "question": qs[i % len(qs)], "answer": i % 4 + 1})
        _dump(root / "clevr" / f"{split}.json", recs)


OPEN_MI_CLASSES = ["dax", "blicket", "perpo", "shously", "tufa"]


def write_open_mi(root: Path, n_query: int = 3) -> None:
    """open_mi: self-contained queries with classes and each class's 5 support images (support.json unused)."""
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]
    recs = []
    for q in range(n_query):
        support = {}
        for cls, col in zip(OPEN_MI_CLASSES, colors, strict=True):
            paths = []
            for k in range(5):
                rel = f"open_mi/support/q{q}_{cls}_{k}.png"
                _draw(root / rel, cls[:3], color=col)
                paths.append(rel)
            support[cls] = {"images": paths, "caption": f"a photo of a {cls}"}
        answer = OPEN_MI_CLASSES[q % 5]
        rel = f"open_mi/query/q{q}.png"
        _draw(root / rel, answer[:3], color=colors[q % 5])
        recs.append({"id": f"open_mi_query_{q}", "image": [rel], "question": "This is a", "answer": answer,
                     "classes": OPEN_MI_CLASSES, "support": support})
    _dump(root / "open_mi" / "query.json", recs)
    # the pool file exists in the published layout; VL-ICL never draws from it for open_mi
    rel = "open_mi/support/pool_0.png"
    _draw(root / rel, "dax")
    _dump(root / "open_mi" / "support.json", [{"id": "open_mi_support_0", "image": [rel], "question": "This is a",
                                               "answer": "dax"}])


def write_matching_mi(root: Path, n_support: int = 4, n_query: int = 4) -> None:
    """matching_mi: queries are image pairs answered Yes/No; support records hold a same and a diff couple."""
    question = "Do the two images satisfy the induced relationship?"

    def pair(split: str, name: str, same: bool) -> dict:
        rels = [f"matching_mi/{split}/{name}_0.png", f"matching_mi/{split}/{name}_1.png"]
        _draw(root / rels[0], "cat", color=(200, 100, 100))
        _draw(root / rels[1], "cat" if same else "dog", color=(200, 100, 100) if same else (100, 100, 200))
        return {"id": f"matching_mi_{split}_{name}", "image": rels, "question": question,
                "answer": "Yes" if same else "No"}

    support = [{"id": f"matching_mi_support_{i}", "same": pair("support", f"s{i}", True),
                "diff": pair("support", f"d{i}", False)} for i in range(n_support)]
    query = [pair("query", f"q{i}", i % 2 == 0) for i in range(n_query)]
    _dump(root / "matching_mi" / "support.json", support)
    _dump(root / "matching_mi" / "query.json", query)


WRITERS = {"vlicl-textocr": write_textocr, "vlicl-operator": write_operator,
           "vlicl-operator-interleaved": write_operator_interleaved, "vlicl-open-mi": write_open_mi,
           "vlicl-clevr": write_clevr, "vlicl-matching-mi": write_matching_mi}


def write_all(root: Path) -> Path:
    """Write every task's folder under ``root`` and return it."""
    for write in WRITERS.values():
        write(root)
    return root


def write_training_support(root: Path) -> Path:
    """Rewrite clevr's and open_mi's support.json (published layout) with pools big enough for SymDPO contexts:
    clevr 4 questions x 6 records with counts 1-3 (answers repeat within a question), open_mi 4 classes x 4
    images answering "This is a" with the class name. query.json stays as ``write_all`` wrote it."""
    qs = ["size: small", "material: rubber", "shape: cube", "color: red"]
    recs = []
    for i in range(24):
        rel = f"clevr/support/CLEVR_train_{i:06d}.png"
        _draw(root / rel, "o" * (i % 3 + 1), color=(100 + 6 * i, 128, 128))
        recs.append({"id": f"clevr_support_{i}", "image": [rel], "question": qs[i // 6], "answer": i % 3 + 1})
    _dump(root / "clevr" / "support.json", recs)
    recs = []
    for c, cls in enumerate(OPEN_MI_CLASSES[:4]):
        for k in range(4):
            rel = f"open_mi/support/{cls}_{k}.png"
            _draw(root / rel, cls[:3], color=(60 * c, 200 - 10 * k, 90))
            recs.append({"id": f"open_mi_support_{cls}_{k}", "image": [rel], "question": "This is a", "answer": cls})
    _dump(root / "open_mi" / "support.json", recs)
    return root
