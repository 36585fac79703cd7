"""VL-ICL Bench's image-to-text data in its published layout, read into checked records (one-line errors).

The layout (``docs/vl-icl.md``; VL-ICL ``utils/utils.py::load_data``): a folder holding ``{task}/query.json``
(the evaluated records) and ``{task}/support.json`` (the demonstration pool), each one JSON list, with the
unzipped images under ``{task}/query/`` and ``{task}/support/``. Image paths in the records are relative to the
folder and already start with the task folder. ``image`` is always a *list* of paths.

Read by the evaluation tasks (``eval.vlicl_data``: demonstrations, ``eval.vlicl_tasks``) and by
``symdpo data build --source vlicl`` (training pairs from the support split only, ``data.vlicl``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from symdpo.data.errors import DataError
from symdpo.data.sources.types import VQAExample, derived_question_type

HUB_ID = "ys-zong/VL-ICL"
DOWNLOAD_HINT = (f"download it with `git lfs install && git clone https://huggingface.co/datasets/{HUB_ID}` and run "
                 "its unzip.sh (docs/vl-icl.md)")

# symdpo task name -> VL-ICL's dataset folder
FOLDERS = {"vlicl-textocr": "textocr", "vlicl-operator": "operator_induction",
           "vlicl-operator-interleaved": "operator_induction_interleaved", "vlicl-open-mi": "open_mi",
           "vlicl-clevr": "clevr", "vlicl-matching-mi": "matching_mi"}
# images per record: two digits as two images (interleaved), two images to match (matching_mi), else one
IMAGES_PER_RECORD = {"operator_induction_interleaved": 2, "matching_mi": 2}
OPERATOR_INDEX = {"+": 0, "-": 1, "x": 2}  # position of each operator's result in a support answer list


@dataclass(frozen=True)
class VLICLRecord:
    """One VL-ICL record: its images (paths relative to the data folder), question and answer.

    ``answer`` is as stored: a string, an int (clevr, operator queries) or, for operator support records, the
    list [A+B, A-B, AxB]. ``operator`` is set on operator queries; ``classes`` and ``class_images`` (class ->
    its support image paths) on open_mi queries; ``pair`` = (same, diff) on matching_mi support records.
    """

    id: str
    image: tuple[str, ...]
    question: str
    answer: Any
    operator: str | None = None
    classes: tuple[str, ...] = ()
    class_images: tuple[tuple[str, tuple[str, ...]], ...] = ()
    pair: tuple[VLICLRecord, VLICLRecord] | None = None

    def all_images(self) -> tuple[str, ...]:
        """Return every image path the record refers to (its own, its open_mi support, its matching couple)."""
        own = self.image + tuple(p for _, paths in self.class_images for p in paths)
        return own + (self.pair[0].all_images() + self.pair[1].all_images() if self.pair else ())


# --- reading ------------------------------------------------------------------------------------------------


def _json_list(path: Path) -> list[tuple[int, Any]]:
    """Return the (line, element) pairs of the JSON list in ``path``; bad JSON is a DataError naming the line."""
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e.msg})", line=e.lineno) from None
    if not isinstance(whole, list):
        raise DataError(path, f"holds a JSON {type(whole).__name__}, not the list of records VL-ICL writes", line=1)
    # a second pass over the text gives each element's line (json.loads keeps no positions)
    decoder, pos, out = json.JSONDecoder(), text.index("[") + 1, []
    gap, line, counted = re.compile(r"[\s,]*"), 1, 0
    for element in whole:
        pos = gap.match(text, pos).end()
        line, counted = line + text.count("\n", counted, pos), pos  # lines counted once, front to back
        out.append((line, element))
        pos = decoder.raw_decode(text, pos)[1]
    return out


def _field(rec: Any, name: str, where: str, what: str) -> Any:
    """Return ``rec[name]``, or raise a DataError naming the place and what the field should hold."""
    if not isinstance(rec, dict):
        raise DataError(where, f"a record must be a JSON object, got {type(rec).__name__}")
    if name not in rec:
        raise DataError(where, f"no field {name!r} ({what})")
    return rec[name]


def _images(rec: dict, where: str, count: int) -> tuple[str, ...]:
    """Return the record's ``image`` list as a tuple of paths, checked to hold ``count`` strings."""
    images = _field(rec, "image", where, f"a list of {count} image path(s) relative to the VL-ICL folder")
    if not (isinstance(images, list) and len(images) == count and all(isinstance(p, str) and p for p in images)):
        raise DataError(where, f"field 'image' must be a list of {count} image path(s), got {images!r:.80}")
    return tuple(images)


def _plain(rec: dict, where: str, count: int, rid: str) -> VLICLRecord:
    """Return a record with images, question and answer (the shape of every record but the special ones)."""
    question = _field(rec, "question", where, "the question text")
    answer = _field(rec, "answer", where, "the expected answer")
    return VLICLRecord(rid, _images(rec, where, count), str(question), answer)


def _parse(rec: Any, where: str, folder: str, split: str, rid: str) -> VLICLRecord:
    """Return one record of ``folder``'s ``split``, its task-specific fields checked."""
    count = IMAGES_PER_RECORD.get(folder, 1)
    if folder == "matching_mi" and split == "support":
        same, diff = (_plain(_field(rec, k, where, f"the {k}-class couple: image, question, answer"), f"{where}: {k}",
                             count, f"{rid}/{k}") for k in ("same", "diff"))
        return VLICLRecord(rid, (), same.question, None, pair=(same, diff))
    out = _plain(rec, where, count, rid)
    if folder.startswith("operator_induction"):
        if split == "support":
            if not (isinstance(out.answer, list) and len(out.answer) == 3):
                raise DataError(where, f"field 'answer' must be the list [A+B, A-B, AxB], got {out.answer!r:.60}")
        else:
            op = _field(rec, "operator", where, "the query's operator: +, - or x")
            if op not in OPERATOR_INDEX:
                raise DataError(where, f"field 'operator' must be one of + - x, got {op!r:.20}")
            out = replace(out, operator=op)
    if folder == "open_mi" and split == "query":
        classes = _field(rec, "classes", where, "the episode's class names")
        support = _field(rec, "support", where, "each class's support images: {class: {images: [...]}}")
        try:
            class_images = tuple((c, tuple(support[c]["images"])) for c in classes)
        except (KeyError, TypeError):
            raise DataError(where, "field 'support' must map every class in 'classes' to {'images': [paths]}") \
                from None
        if out.answer not in classes or len(classes) < 2:
            raise DataError(where, f"field 'answer' {out.answer!r:.40} must be one of at least two 'classes'")
        out = replace(out, classes=tuple(classes), class_images=class_images)
    return out


def read_vlicl(root: str | Path, task: str, split: str) -> list[VLICLRecord]:
    """Return the records of ``{root}/{folder}/{split}.json`` for a vlicl task, each checked (one-line errors)."""
    folder = FOLDERS[task]
    path = Path(root) / folder / f"{split}.json"
    if not path.is_file():
        raise DataError(path, f"not found; --vlicl-data must be the VL-ICL folder holding {folder}/{split}.json "
                        "(and the unzipped images); " + DOWNLOAD_HINT)
    records, seen = [], set()
    for i, (line, rec) in enumerate(_json_list(path)):
        rid = str(rec.get("id", f"{folder}_{split}_{i}")) if isinstance(rec, dict) else ""
        where = f"{path}: line {line} (record {i}{', id ' + rid if rid else ''})"
        parsed = _parse(rec, where, folder, split, rid)
        if rid in seen:
            raise DataError(where, f"id {rid!r} appears twice; give every record its own id")
        seen.add(rid)
        records.append(parsed)
    return records


# --- training pairs from the support split (``symdpo data build --source vlicl``) ------------------------------

# tasks whose support records hold one image per demonstration, as preference and SFT records do
BUILDABLE = ("textocr", "operator_induction", "clevr", "open_mi")


def vlicl_folder(task: str) -> str:
    """Return VL-ICL's dataset folder of ``task`` (its folder name or symdpo's eval task name), or raise ValueError."""
    folder = FOLDERS.get(task, task)
    if folder not in FOLDERS.values():
        raise ValueError(f"unknown VL-ICL task {task!r}; one of {', '.join(BUILDABLE)} (or the eval names "
                         f"{', '.join(k for k, v in FOLDERS.items() if v in BUILDABLE)})")
    if folder not in BUILDABLE:
        raise ValueError(f"{folder} cannot be built: its demonstrations hold {IMAGES_PER_RECORD[folder]} images each "
                         f"and a training record holds one image per demonstration; use one of {', '.join(BUILDABLE)}")
    return folder


def eval_task(folder: str) -> str:
    """Return symdpo's eval task name of VL-ICL's dataset ``folder`` (``operator_induction`` -> ``vlicl-operator``)."""
    return next(name for name, f in FOLDERS.items() if f == folder)


def read_vlicl_support(root: str | Path, folder: str) -> list[VQAExample]:
    """Return ``{root}/{folder}/support.json`` as VQA examples (query.json is never read).

    Operator support records give one example per operator (id ``{id}/{op}``, question type ``operator {op}``,
    answer that operator's result), so a context shows one operator, as VL-ICL's demonstrations do; clevr's
    question type is its attribute ("size" of "size: small"); answers are written as VL-ICL's ``str()``.
    """
    out = []
    for rec in read_vlicl(root, eval_task(folder), "support"):
        image, question = rec.image[0], rec.question
        if folder == "operator_induction":
            for op, k in OPERATOR_INDEX.items():
                answer = str(rec.answer[k])
                out.append(VQAExample(f"{rec.id}/{op}", image, question, (answer,), answer, f"operator {op}"))
            continue
        qtype = question.split(":")[0].strip() if folder == "clevr" else derived_question_type(question)
        answer = str(rec.answer)
        out.append(VQAExample(rec.id, image, question, (answer,), answer, qtype))
    return out
