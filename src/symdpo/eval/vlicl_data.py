"""VL-ICL Bench's image-to-text data: its published layout read into records, and its demonstration selection.

The layout (``docs/vl-icl.md``; VL-ICL ``utils/utils.py::load_data``): a folder holding ``{task}/query.json``
(the evaluated records) and ``{task}/support.json`` (the demonstration pool), each one JSON list, with the
unzipped images under ``{task}/query/`` and ``{task}/support/``. Image paths in the records are relative to the
folder and already start with the task folder. ``image`` is always a *list* of paths.

Demonstrations are chosen per query as VL-ICL's ``utils/ICL_utils.py::select_demonstration`` does: n random
support records (the operator tasks show the answer of the query's own operator); open_mi builds a 2-way
episode from the query's *own* support images, n per class; matching_mi shows n support couples as
``same, diff, same, diff, ...``. Each query draws from its own seeded RNG (see ``eval.plan``), so the demo
sets follow VL-ICL's distribution but not its exact draws (those depend on its global RNG's history).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from symdpo.eval.errors import EvalError

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
OPEN_MI_QUESTION = "This is a"  # the question of every open_mi demonstration (select_demonstration)
OPEN_MI_MAX_SHOTS = 5  # each class of an open_mi query has 5 support images


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


def resolve_root(value: str | None, task: str) -> Path:
    """Return the VL-ICL data folder of ``--vlicl-data`` (a folder, or the hub id: downloaded and unzipped)."""
    if not value:
        raise EvalError(f"task {task} needs --vlicl-data: the VL-ICL folder holding {FOLDERS[task]}/query.json; "
                        + DOWNLOAD_HINT)
    path = Path(value)
    if path.is_dir():
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", value) and not path.exists():
        return download(value, FOLDERS[task])
    raise EvalError(f"--vlicl-data {value}: not a folder; give the VL-ICL folder (or the hub id {HUB_ID}); "
                    + DOWNLOAD_HINT)


def download(repo_id: str, folder: str) -> Path:
    """Return the local snapshot of ``repo_id`` with ``folder``'s JSON files and unzipped images (needs the hub)."""
    import zipfile

    try:
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=[f"{folder}/*"]))
    except Exception as e:  # offline, unknown repo, no access: one line saying so
        raise EvalError(f"--vlicl-data {repo_id}: could not download from the Hugging Face hub "
                        f"({type(e).__name__}); " + DOWNLOAD_HINT + ", then give its folder") from None
    for split in ("support", "query"):  # as unzip.sh: {folder}/{split}.zip -> {folder}/{split}/...
        archive = root / folder / f"{split}.zip"
        if archive.exists() and not (root / folder / split).is_dir():
            with zipfile.ZipFile(archive) as z:
                z.extractall(root / folder)
    return root


def _json_list(path: Path) -> list[tuple[int, Any]]:
    """Return the (line, element) pairs of the JSON list in ``path``; bad JSON is an EvalError naming the line."""
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as e:
        raise EvalError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(whole, list):
        raise EvalError(f"{path}: line 1: holds a JSON {type(whole).__name__}, not the list of records VL-ICL writes")
    # a second pass over the text gives each element's line (json.loads keeps no positions)
    decoder, pos, out = json.JSONDecoder(), text.index("[") + 1, []
    for element in whole:
        pos = re.compile(r"[\s,]*").match(text, pos).end()
        _, end = decoder.raw_decode(text, pos)
        out.append((text.count("\n", 0, pos) + 1, element))
        pos = end
    return out


def _field(rec: Any, name: str, where: str, what: str) -> Any:
    """Return ``rec[name]``, or raise an EvalError naming the place and what the field should hold."""
    if not isinstance(rec, dict):
        raise EvalError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    if name not in rec:
        raise EvalError(f"{where}: no field {name!r} ({what})")
    return rec[name]


def _images(rec: dict, where: str, count: int) -> tuple[str, ...]:
    """Return the record's ``image`` list as a tuple of paths, checked to hold ``count`` strings."""
    images = _field(rec, "image", where, f"a list of {count} image path(s) relative to the VL-ICL folder")
    if not (isinstance(images, list) and len(images) == count and all(isinstance(p, str) and p for p in images)):
        raise EvalError(f"{where}: field 'image' must be a list of {count} image path(s), got {images!r:.80}")
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
                raise EvalError(f"{where}: field 'answer' must be the list [A+B, A-B, AxB], got {out.answer!r:.60}")
        else:
            op = _field(rec, "operator", where, "the query's operator: +, - or x")
            if op not in OPERATOR_INDEX:
                raise EvalError(f"{where}: field 'operator' must be one of + - x, got {op!r:.20}")
            out = replace(out, operator=op)
    if folder == "open_mi" and split == "query":
        classes = _field(rec, "classes", where, "the episode's class names")
        support = _field(rec, "support", where, "each class's support images: {class: {images: [...]}}")
        try:
            class_images = tuple((c, tuple(support[c]["images"])) for c in classes)
        except (KeyError, TypeError):
            raise EvalError(f"{where}: field 'support' must map every class in 'classes' to {{'images': [paths]}}") \
                from None
        if out.answer not in classes or len(classes) < 2:
            raise EvalError(f"{where}: field 'answer' {out.answer!r:.40} must be one of at least two 'classes'")
        out = replace(out, classes=tuple(classes), class_images=class_images)
    return out


def read_vlicl(root: str | Path, task: str, split: str) -> list[VLICLRecord]:
    """Return the records of ``{root}/{folder}/{split}.json`` for a vlicl task, each checked (one-line errors)."""
    folder = FOLDERS[task]
    path = Path(root) / folder / f"{split}.json"
    if not path.is_file():
        raise EvalError(f"{path}: not found; --vlicl-data must be the VL-ICL folder holding {folder}/{split}.json "
                        "(and the unzipped images); " + DOWNLOAD_HINT)
    records, seen = [], set()
    for i, (line, rec) in enumerate(_json_list(path)):
        rid = str(rec.get("id", f"{folder}_{split}_{i}")) if isinstance(rec, dict) else ""
        where = f"{path}: line {line} (record {i}{', id ' + rid if rid else ''})"
        parsed = _parse(rec, where, folder, split, rid)
        if rid in seen:
            raise EvalError(f"{where}: id {rid!r} appears twice; give every record its own id")
        seen.add(rid)
        records.append(parsed)
    return records


# --- demonstration selection --------------------------------------------------------------------------------


def demos_per_shot(task: str) -> int:
    """Return how many demonstrations one shot means: 2 for open_mi (one per class) and matching_mi (same + diff)."""
    return 2 if FOLDERS[task] in ("open_mi", "matching_mi") else 1


def check_shots(task: str, shots: int, pool: Sequence[VLICLRecord], queries: Sequence[VLICLRecord]) -> None:
    """Raise an EvalError when ``shots`` cannot be shown (open_mi: the query's images per class; else: the pool)."""
    if FOLDERS[task] == "open_mi":
        have = min((len(paths) for q in queries for _, paths in q.class_images), default=OPEN_MI_MAX_SHOTS)
        if shots > have:
            raise EvalError(f"{task}: {shots} shots, but an open_mi query has {have} support images per class; "
                            f"use --shots up to {have} (VL-ICL uses 0,1,2,4,5)")
    elif shots > len(pool):
        raise EvalError(f"{task}: {shots} shots but the support pool has {len(pool)} records "
                        f"(support.json, --query-set-size); lower the shots")


def select_demos(task: str, rng: random.Random, pool: Sequence[VLICLRecord], query: VLICLRecord,
                 shots: int) -> list[VLICLRecord]:
    """Return the demonstrations VL-ICL shows before ``query`` at ``shots`` shots, in prompt order."""
    folder = FOLDERS[task]
    if shots == 0:
        return []
    if folder == "open_mi":
        own = dict(query.class_images)
        other = rng.choice([c for c in query.classes if c != query.answer])
        order = [query.answer, other] if rng.random() < 0.5 else [other, query.answer]  # VL-ICL's coin flip
        return [VLICLRecord(f"{query.id}/support/{cls}/{i}", (own[cls][i],), OPEN_MI_QUESTION, cls)
                for i in range(shots) for cls in order]
    picked = rng.sample(list(pool), shots)
    if folder == "matching_mi":
        return [sub for rec in picked for sub in rec.pair]  # same_1, diff_1, same_2, diff_2, ...
    if folder.startswith("operator_induction"):
        k = OPERATOR_INDEX[query.operator]
        return [replace(rec, answer=rec.answer[k]) for rec in picked]
    return picked
