"""``symdpo data export``: SymDPO preference records in TRL's and LLaMA-Factory's preference layouts.

Both layouts write the context as a conversation: each demonstration is a user turn (its image, then its
question) answered by an assistant turn (the answer shown: a symbol, or the text answer), and the query is the
last user turn; ``chosen`` / ``rejected`` are the assistant's answers. The images are embedded, in the order
they appear (the record's ``images``: demonstrations first, the query last).

* ``trl``: TRL's vision preference layout (as ``trl-lib/rlaif-v``): ``images`` and ``prompt`` / ``chosen`` /
  ``rejected`` in conversational form with typed content (``{"type": "image"}`` where each image goes), so
  ``DPOTrainer`` fills the images in and applies the model's chat template itself.
* ``llamafactory``: LLaMA-Factory's sharegpt preference layout (``conversations`` of ``from``/``value``
  turns, ``chosen`` / ``rejected`` messages, ``images``), one ``<image>`` per image in the text, plus the
  ``dataset_info.json`` entry (``formatting: sharegpt``, ``ranking: true``) that registers it.

The output folder holds ``data/train-*.parquet`` (what the Hub serves), ``dataset/`` (``save_to_disk``, for
``datasets.load_from_disk``), the dataset card ``README.md`` and the build's ``manifest.json``. Records are
streamed through ``datasets.Dataset.from_generator`` (written in batches to a cache inside the output's temp
folder), so memory stays flat however many records there are; the folder appears only when all is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from symdpo.atomic import atomic_directory, write_text
from symdpo.data.conversations import quiet_datasets
from symdpo.data.errors import BadImageError, DataError
from symdpo.data.images import check_image
from symdpo.data.manifest import image_root_of, read_manifest
from symdpo.data.paths import resolve_inside
from symdpo.data.recordio import read_records
from symdpo.data.records import PreferenceRecord

FORMATS = ("trl", "llamafactory")
IMAGE_TOKEN = "<image>"  # LLaMA-Factory's image placeholder
SHARD_BYTES = 500 * 2**20  # the Hub's usual parquet shard size
BATCH = 100  # rows per write: a row holds up to ~9 embedded images
DATA_GLOB = "data/train-*.parquet"


def _turns(record: PreferenceRecord) -> Iterator[tuple[str, str | None]]:
    """Yield (role, question or answer) of the context: user (image + question) / assistant, the query last."""
    for demo in record.context:
        yield "user", demo.question
        yield "assistant", demo.answer
    yield "user", record.query.question


def trl_row(record: PreferenceRecord) -> dict[str, Any]:
    """Return the record's TRL fields (``prompt``, ``chosen``, ``rejected``; conversational, typed content)."""
    def message(role: str, text: str | None) -> dict[str, Any]:
        if role == "assistant":
            return {"role": role, "content": [{"type": "text", "text": text}]}
        parts = [{"type": "image", "text": None}]  # a user turn shows its image first, as symdpo's prompts do
        return {"role": role, "content": parts + ([{"type": "text", "text": text}] if text is not None else [])}

    return {"prompt": [message(r, t) for r, t in _turns(record)],
            "chosen": [message("assistant", record.chosen)], "rejected": [message("assistant", record.rejected)]}


def llamafactory_row(record: PreferenceRecord) -> dict[str, Any]:
    """Return the record's LLaMA-Factory sharegpt fields (``conversations``, ``chosen``, ``rejected``)."""
    def message(role: str, text: str | None) -> dict[str, str]:
        if role == "assistant":
            return {"from": "gpt", "value": text or ""}
        return {"from": "human", "value": IMAGE_TOKEN + (text or "")}

    return {"conversations": [message(r, t) for r, t in _turns(record)],
            "chosen": message("assistant", record.chosen), "rejected": message("assistant", record.rejected)}


def features(fmt: str):
    """Return the ``datasets.Features`` of an export in ``fmt``."""
    from datasets import Features, Image, List, Value

    common = {"id": Value("string"), "kind": Value("string"), "rejected_type": Value("string"),
              "images": List(Image())}
    if fmt == "trl":
        turns = List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})})
        return Features({"prompt": turns, "chosen": turns, "rejected": turns, **common})
    message = {"from": Value("string"), "value": Value("string")}
    return Features({"conversations": List(message), "chosen": message, "rejected": message, **common})


def check_format(fmt: str) -> str:
    """Return ``fmt`` when it is an export format; raise a DataError naming the formats otherwise."""
    if fmt not in FORMATS:
        raise DataError("--format", f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    return fmt


def preference_records(path: str | Path) -> Iterator[PreferenceRecord]:
    """Yield the preference records of ``path``; an SFT record or an empty file raises a DataError."""
    empty = True
    for record in read_records(path):
        if not isinstance(record, PreferenceRecord):
            raise DataError(path, f"holds SFT records ({record.kind!r}, record {record.id!r}); export takes "
                            "preference records: build them with `symdpo data build --mode preference`")
        empty = False
        yield record
    if empty:
        raise DataError(path, "no records: the file is empty")


def _image(records: Path, root: Path, rel: str, checked: dict[str, Path]) -> dict[str, Any]:
    """Return ``{"bytes", "path"}`` of the image ``root/rel`` (its file's bytes, not re-encoded).

    Each distinct image is checked and resolved once (``checked``: relative path -> file): resolving a path
    costs more than reading a small image, and contexts reuse images.
    """
    try:
        if rel not in checked:
            check_image(root, rel, decode=False, strict_extension=False)
            checked[rel] = resolve_inside(root, rel)
        return {"bytes": checked[rel].read_bytes(), "path": rel}
    except BadImageError as e:
        raise DataError(records, f"image {rel!r} cannot be read under {root} ({e.reason}: {e.detail}); pass "
                        "--image-root with the folder the build read") from None


def _rows(records: str, fmt: str, image_root: str,
          progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    """Yield the export rows of a record file (the generator ``datasets`` writes from)."""
    to_row = trl_row if fmt == "trl" else llamafactory_row
    root, checked = Path(image_root), {}
    for n, record in enumerate(preference_records(records), 1):
        if progress and n % BATCH == 0:
            progress(n)
        yield {**to_row(record), "id": record.id, "kind": record.kind, "rejected_type": record.rejected_type,
               "images": [_image(Path(records), root, rel, checked) for rel in record.images]}


def dataset_info(name: str) -> dict[str, Any]:
    """Return LLaMA-Factory's ``dataset_info.json`` entry for an export folder (the folder is its data dir)."""
    return {name: {"file_name": "data", "formatting": "sharegpt", "ranking": True,
                   "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected",
                               "images": "images"}}}


def export(records: str | Path, fmt: str, out: str | Path, *, image_root: str | Path | None = None,
           name: str | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write the export folder ``out`` of a preference record file in ``fmt``; return a summary of it."""
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError

    records, out, fmt = Path(records), Path(out), check_format(fmt)
    if out.exists():
        raise DataError(out, "already exists: choose a new --out folder (an export never overwrites one)")
    if not records.is_file():
        raise DataError(records, "is a directory: give a .jsonl or .parquet record file" if records.is_dir()
                        else "file not found")
    manifest = read_manifest(records)
    if manifest and manifest.get("record_type") not in (None, "preference"):
        raise DataError(records, f"holds {manifest['record_type']} records (its manifest says); export takes "
                        "preference records: build them with `symdpo data build --mode preference`")
    root = image_root_of(records, image_root)
    name = name or f"symdpo_{records.name.split('.')[0]}"
    stat = records.stat()
    # a fresh cache per export, so the fingerprint only has to be unique; giving it spares datasets hashing
    # the generator's arguments (the progress callback)
    fingerprint = hashlib.sha256(f"{records.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{fmt}:{root}".encode())
    # the caller reports progress; datasets' bars would interleave with its output
    with quiet_datasets(), atomic_directory(out) as tmp:
        try:
            ds = Dataset.from_generator(
                _rows, features=features(fmt), cache_dir=str(tmp / ".cache"), writer_batch_size=BATCH,
                fingerprint=fingerprint.hexdigest()[:16],
                gen_kwargs={"records": str(records), "fmt": fmt, "image_root": str(root), "progress": progress})
        except DatasetGenerationError as e:  # datasets wraps what the generator raised
            raise (e.__cause__ if isinstance(e.__cause__, DataError) else e) from None
        n = _write(ds, tmp, fmt=fmt, name=name, manifest=manifest)
        del ds
        shutil.rmtree(tmp / ".cache")  # the generator's arrow files: dataset/ holds its own copy
    return {"out": str(out), "format": fmt, "rows": n, "shards": len(list(out.glob(DATA_GLOB))), "name": name}


def _write(ds, tmp: Path, *, fmt: str, name: str, manifest: dict | None) -> int:
    """Write the parquet shards, the save_to_disk copy, the card and info files of ``ds`` into ``tmp``;
    return its row count."""
    from symdpo.data.datacard import render_card

    shards = max(1, math.ceil(ds.data.nbytes / SHARD_BYTES))
    for i in range(shards):
        ds.shard(shards, i, contiguous=True).to_parquet(
            str(tmp / "data" / f"train-{i:05d}-of-{shards:05d}.parquet"), batch_size=BATCH)
    ds.save_to_disk(str(tmp / "dataset"))
    if manifest:
        write_text(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    if fmt == "llamafactory":
        write_text(tmp / "dataset_info.json", json.dumps(dataset_info(name), indent=2) + "\n")
    write_text(tmp / "README.md", render_card(fmt=fmt, name=name, rows=len(ds), manifest=manifest))
    return len(ds)


def check_export_folder(folder: str | Path) -> list[str]:
    """Return the files an export folder would upload (its card, parquet shards, info files); a DataError
    when it is no export."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder; give the --out folder of `symdpo data export`")
    if not (folder / "README.md").is_file():
        raise DataError(folder, "no README.md dataset card, so not a symdpo export; run `symdpo data export`")
    if not list(folder.glob(DATA_GLOB)):
        raise DataError(folder, f"no {DATA_GLOB} shards, so not a symdpo export; run `symdpo data export`")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.relative_to(folder).as_posix().startswith("dataset/"))


def push(folder: str | Path, repo_id: str, *, private: bool = False, message: str = "Upload a symdpo dataset",
         token: str | None = None) -> str:
    """Upload an export folder (card, parquet shards, manifest) to the hub dataset repository ``repo_id``;
    return the commit's URL. The ``dataset/`` copy stays local: the Hub serves the parquet shards."""
    from symdpo.models.push import upload

    check_export_folder(folder)
    return upload(folder, repo_id, repo_type="dataset", private=private, message=message, token=token,
                  ignore=["dataset/*", "dataset/**"])
