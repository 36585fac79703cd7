"""Hugging Face datasets as sources: a ``save_to_disk`` folder, parquet files or folders, or a hub id (online).

The column layouts are those of the datasets most users have (their dataset cards and lmms-eval's task
files, ``lmms_eval/tasks/<task>/utils.py``):

* VQAv2 (``lmms-lab/VQAv2``, ``HuggingFaceM4/VQAv2``): ``question_id``, ``question``, ``answers`` (objects with
  ``answer``), ``multiple_choice_answer``, ``question_type``, ``answer_type``, ``image_id``, ``image``;
* OK-VQA (``lmms-lab/OK-VQA``): the same names, ``answers`` as plain strings;
* TextVQA (``lmms-lab/textvqa``): ``question_id``, ``question``, ``answers`` (strings), ``image_id``, ``image``;
* COCO captions (``lmms-lab/COCO-Caption2017``): ``question_id`` (the image's file name), ``answer`` (its
  captions), ``image``;
* Flickr30K (``lmms-lab/flickr30k``): ``img_id``, ``caption`` (its captions), ``image``.

Rows become the readers' own records (``VQAExample`` / ``CaptionExample``), so everything downstream is the
same as for the JSON files. Images are embedded bytes (written once into a content-addressed folder, so the
feature cache, the bad-image checks and RICES see ordinary files) or paths relative to ``image_root``. Rows
are read one batch at a time (arrow memory-maps, parquet row groups, hub streaming): memory stays bounded.
Errors name the source, the row and the column.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symdpo.atomic import cache_root
from symdpo.data.errors import DataError
from symdpo.data.sources.fields import Item
from symdpo.data.sources.types import CaptionExample, VQAExample, derived_question_type, most_frequent


@dataclass(frozen=True)
class Layout:
    """Where one dataset family keeps each field."""

    kind: str  # "vqa" or "caption"
    id: str
    texts: str  # answers (VQA) or captions
    question: str = "question"
    answer: str | None = None  # the canonical answer column, when there is one
    question_type: str | None = None
    answer_type: str | None = None
    image: str = "image"


LAYOUTS = {
    "vqav2": Layout("vqa", "question_id", "answers", answer="multiple_choice_answer", question_type="question_type",
                    answer_type="answer_type"),
    "okvqa": Layout("vqa", "question_id", "answers", answer="multiple_choice_answer", question_type="question_type",
                    answer_type="answer_type"),
    "textvqa": Layout("vqa", "question_id", "answers"),
    "coco": Layout("caption", "question_id", "answer"),
    "flickr30k": Layout("caption", "img_id", "caption"),
}


def default_image_dir() -> Path:
    """Return the folder embedded images are written to (``SYMDPO_IMAGE_CACHE``, else symdpo's cache's images/)."""
    return Path(os.environ.get("SYMDPO_IMAGE_CACHE") or cache_root() / "images")


_WHAT_TO_GIVE = "give a save_to_disk folder, a parquet file or folder, or a hub dataset id such as lmms-lab/VQAv2"


def _hub_dataset(source: str, split: str | None) -> Any:
    """Return the hub dataset ``source``, streamed; a missing path or a dataset the hub cannot serve is a DataError."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:  # './nope', '/data/vqav2': a local path, and no such file or folder
        raise DataError(source, f"no such folder or file (and not a hub id); {_WHAT_TO_GIVE}") from None
    try:
        return datasets.load_dataset(source, split=split or "validation", streaming=True)
    except ConnectionError:
        raise DataError(source, "no such folder or file here, and the Hugging Face Hub could not be reached to "
                                f"look it up (offline?); {_WHAT_TO_GIVE}") from None
    except DatasetNotFoundError:
        raise DataError(source, f"no such folder or file, nor a dataset on the Hugging Face Hub; {_WHAT_TO_GIVE}") from None


def _rows(source: str | Path, split: str | None) -> Iterator[dict[str, Any]]:
    """Yield the rows of ``source`` with images undecoded ({'bytes', 'path'}), one batch in memory at a time."""
    import datasets

    p = Path(source)
    if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if split is None or split not in ds:
                raise DataError(p, f"a dataset with splits {sorted(ds)}: choose one with the split option "
                                   f"(got {split!r})")
            ds = ds[split]
    elif p.exists():
        files = sorted(str(f) for f in (p.rglob("*.parquet") if p.is_dir() else [p]))
        if not files:
            raise DataError(p, "no .parquet files in this folder")
        ds = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    else:  # a hub id: streamed, nothing downloaded whole
        ds = _hub_dataset(str(source), split)
    features = ds.features or {}
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    yield from ds


def _as_list(value: Any) -> Any:
    """Return a column of objects as a list of dicts (datasets gives a dict of lists for a sequence of structs)."""
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        keys = list(value)
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*value.values(), strict=True)]
    return value


def _optional(item: Item, column: str | None) -> str | None:
    """Return an optional text column's value, None when the column is absent, null or blank."""
    if column is None or item.value.get(column) in (None, ""):
        return None
    return item.text(column)


def _suffix(data: bytes) -> str:
    """Return the file extension of encoded image bytes by their content (".bin" when none is recognised:
    the bad-image check then reports or skips it like any unreadable file)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        fmt = Image.open(io.BytesIO(data)).format or ""
    except (UnidentifiedImageError, OSError):
        return ".bin"
    return {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}.get(fmt, ".bin")


def _image(item: Item, column: str, image_dir: Path) -> tuple[str, bool]:
    """Return (the image's path relative to its root, whether it was embedded): embedded bytes are written
    once by content into ``image_dir``; a row's path is relative to the image root the user gives."""
    value = item.value.get(column)
    if value is None:
        raise item.error("missing (no image in this row)", column)
    data = value.get("bytes") if isinstance(value, dict) else value if isinstance(value, bytes) else None
    if data:
        digest = hashlib.sha256(data).hexdigest()
        rel = f"{digest[:2]}/{digest}{_suffix(data)}"
        target = image_dir / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)  # whole or absent, even when two processes write the same image
        return rel, True
    path = value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else None
    if not path:
        raise item.error("neither image bytes nor a path", column)
    return item.relpath(path, column), False


def read_hf(source: str | Path, task: str, *, split: str | None = None, image_dir: str | Path | None = None,
            image_root: str | Path | None = None) -> tuple[list[VQAExample | CaptionExample], Path]:
    """Return ``task``'s records from a Hugging Face dataset ``source`` (columns as in ``LAYOUTS``) and the
    folder their image paths are relative to.

    Embedded images go to ``image_dir`` (default: `default_image_dir`); images given as paths are relative
    to ``image_root``, which such a dataset needs.
    """
    if task not in LAYOUTS:
        raise DataError(source, f"no Hugging Face layout for task {task!r}; known: {', '.join(sorted(LAYOUTS))}")
    layout, image_dir = LAYOUTS[task], Path(image_dir or default_image_dir())
    records: list[VQAExample | CaptionExample] = []
    seen: set[str] = set()
    embedded: set[bool] = set()
    for i, row in enumerate(_rows(source, split)):
        if not records:  # the columns, once: a wrong dataset fails on its first row, naming what is missing
            needed = [layout.id, layout.texts, layout.image] + ([layout.question] if layout.kind == "vqa" else [])
            missing = [c for c in needed if c not in row]
            if missing:
                raise DataError(source, f"no column {missing[0]!r} (task {task} reads {', '.join(needed)}; this "
                                        f"dataset has {', '.join(sorted(row))})", field=missing[0])
        item = Item({k: _as_list(v) for k, v in row.items()}, source, f"row {i}", None)
        rid = str(item.ident(layout.id))
        if rid in seen:
            raise item.error(f"duplicate id {rid}", layout.id)
        seen.add(rid)
        image, was_embedded = _image(item, layout.image, image_dir)
        embedded.add(was_embedded)
        if len(embedded) > 1:
            raise item.error("mixes embedded images and image paths; give a dataset with one kind", layout.image)
        if layout.kind == "caption":
            records.append(CaptionExample(rid, image, item.texts(layout.texts), split or "test"))
            continue
        question = item.text(layout.question)
        raw = item.value.get(layout.texts)
        key = "answer" if isinstance(raw, list) and raw and isinstance(raw[0], dict) else None
        answers = item.texts(layout.texts, key=key)
        answer = _optional(item, layout.answer) or most_frequent(answers)
        qtype = _optional(item, layout.question_type) or derived_question_type(question)
        records.append(VQAExample(rid, image, question, answers, answer, qtype, _optional(item, layout.answer_type)))
    if not records:
        raise DataError(source, "no rows in this dataset (or split)")
    if True in embedded:
        return records, image_dir
    if image_root is None:
        raise DataError(source, "its images are paths, not embedded bytes: give the folder they are relative "
                                "to (--image-root)", field=layout.image)
    return records, Path(image_root)
