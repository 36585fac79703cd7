"""TRL-layout vision preference data read back for training: each row as the turns symdpo renders.

TRL's vision preference layout (what ``symdpo data export --format trl`` writes, as ``trl-lib/rlaif-v``):
``images`` (in order of appearance), ``prompt`` a list of ``{role, content}`` turns whose content items are
``{"type": "image"}`` or ``{"type": "text", "text": ...}``, and ``chosen`` / ``rejected`` one assistant turn
each. The prompt's user turns alternate with assistant turns and the last user turn is the query: each
(user, assistant) pair before it is a demonstration (its question, the answer shown), as ``data export``
wrote them, so a symdpo export renders exactly as its records do. A user turn's leading images go where the
model's prompt format puts a turn's image; an image after some text stays where it is; a turn without text
is a caption turn. Rows are checked once, on load, without decoding an image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symdpo.data.errors import DataError
from symdpo.data.records import Turn

COLUMNS = ("images", "prompt", "chosen", "rejected")
LAYOUT = ("TRL's conversational vision layout: images, and prompt/chosen/rejected as lists of {role, content} "
          "turns with {\"type\": \"image\"} where each image goes")


@dataclass(frozen=True)
class Conversation:
    """One preference row: its turns (demonstrations, the query last), chosen and rejected answers, metrics group."""

    id: str
    row: int  # the dataset row holding its images
    turns: list[Turn]
    chosen: str
    rejected: str
    group: str | None  # the export's rejected type (text, wrong_symbol, wrong_answer); None for other data


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence ``datasets``' progress bars inside the block (the caller reports progress; an error stays one line)."""
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not were_off:
            enable_progress_bars()


def export_root(path: Path) -> Path:
    """Return the ``symdpo data export`` folder ``path`` lies in (its ``data/``, ``dataset/`` or a shard), else
    ``path``: reference log-probs are stored beside that folder, never inside what ``data push`` uploads."""
    parent = path.parent.parent if path.is_file() and path.parent.name == "data" else (
        path.parent if path.is_dir() and path.name in ("data", "dataset") else None)
    if parent is not None and (parent / "README.md").is_file() and list(parent.glob("data/train-*.parquet")):
        return parent
    return path


def load(path: str | Path) -> tuple[Any, list[Path]]:
    """Return (the ``datasets.Dataset``, its data files) of a TRL-layout folder or parquet file.

    A folder is read as ``datasets`` reads it: a ``save_to_disk`` folder (an export's ``dataset/``, or a
    DatasetDict's ``train`` split), else its ``data/train-*.parquet`` (as the Hub serves an export) or
    its ``*.parquet`` files.
    """
    from datasets import load_dataset, load_from_disk

    path = Path(path)
    if not path.exists():
        raise DataError(path, "not found (data.path)")
    disk = next((d for d in (path, path / "dataset") if (d / "state.json").is_file()
                 or (d / "dataset_dict.json").is_file()), None) if path.is_dir() else None
    if disk is not None:
        ds = load_from_disk(str(disk))
        if (disk / "dataset_dict.json").is_file():
            if "train" not in ds:
                raise DataError(disk, f"a DatasetDict without a train split (it has {', '.join(ds)})")
            ds = ds["train"]
        return ds, [Path(f["filename"]) for f in ds.cache_files]
    files = [path] if path.is_file() else (sorted(path.glob("data/train-*.parquet")) or sorted(path.glob("*.parquet"))
                                           or sorted(path.glob("data/*.parquet")))
    if not files:
        raise DataError(path, "is a directory with no dataset in it: give a record file (.jsonl, .parquet), a "
                        "`symdpo data export --format trl` folder, a save_to_disk folder or a folder of parquet "
                        "files (data.path)")
    if any(f.suffix != ".parquet" for f in files):
        raise DataError(path, "not a .parquet file: give a record file (.jsonl, .parquet) or a TRL-layout folder")
    with quiet_datasets():
        return load_dataset("parquet", data_files=[str(f) for f in files], split="train"), files


def with_images(ds: Any, path: Path) -> Any:
    """Return ``ds`` with its ``images`` column decoded as images; a DataError when it lacks a TRL column."""
    from datasets import Image, List

    missing = [c for c in COLUMNS if c not in ds.column_names]
    if missing:
        raise DataError(path, f"no {' / '.join(missing)} column (it has {', '.join(ds.column_names)}): symdpo "
                        f"reads {LAYOUT}", field=missing[0])
    feature = ds.features["images"]
    if not (isinstance(feature, List) and isinstance(feature.feature, Image)):
        try:
            ds = ds.cast_column("images", List(Image()))
        except (TypeError, ValueError) as e:
            raise DataError(path, f"holds {feature}, not a list of images ({e})", field="images") from None
    return ds


def conversations(ds: Any, path: Path, *, marker: str, max_rows: int | None = None) -> Iterator[Conversation]:
    """Yield each row of a TRL-layout dataset as a Conversation; a bad row raises naming its row and field."""
    import pyarrow.compute as pc

    cols = [c for c in (*COLUMNS, "id", "rejected_type") if c in ds.column_names]
    row = 0
    for batch in ds.select_columns(cols).with_format("arrow").iter(batch_size=1000):
        counts = pc.list_value_length(batch["images"]).to_pylist()
        data = batch.drop_columns(["images"]).to_pylist()
        for n_images, obj in zip(counts, data, strict=True):
            if max_rows is not None and row >= max_rows:
                return
            yield parse_row(obj, n_images or 0, path=path, row=row, marker=marker)
            row += 1


def parse_row(obj: dict[str, Any], n_images: int, *, path: Path, row: int, marker: str) -> Conversation:
    """Return one TRL-layout row (prompt, chosen, rejected; ``n_images`` images) as a Conversation."""
    def fail(field: str, message: str) -> DataError:
        return DataError(path, message, item=f"row {row}", field=field)

    prompt = obj["prompt"]
    if not isinstance(prompt, list) or not prompt:
        what = "plain text (TRL's standard layout)" if isinstance(prompt, str) else repr(prompt)
        raise fail("prompt", f"is {what}, not conversational turns: symdpo reads {LAYOUT}")
    if not isinstance(prompt[-1], dict) or prompt[-1].get("role") != "user":
        raise fail("prompt", "does not end on a user turn: the last user turn is the query")
    turns: list[Turn] = []
    seen = 0
    for t, turn in enumerate(prompt):
        role = turn.get("role") if isinstance(turn, dict) else None
        want = "assistant" if t % 2 else "user"
        if role != want:
            raise fail(f"prompt.{t}.role", f"is {role!r} where a {want} turn is due: user and assistant turns "
                       "alternate (no system turn: the model's prompt format writes its own)")
        if role == "user":
            question, lead, total = _user(turn.get("content"), marker, fail, t)
            turns.append((question, None, lead))
            seen += total
        else:
            turns[-1] = (turns[-1][0], _text(turn.get("content"), fail, f"prompt.{t}.content"), turns[-1][2])
    if seen != n_images:
        raise fail("images", f"{n_images} images for {seen} {{\"type\": \"image\"}} items in the prompt: give one "
                    "image per image item, in order")
    answers = [_answer(obj[k], fail, k) for k in ("chosen", "rejected")]
    group = obj.get("rejected_type")
    return Conversation(str(obj["id"]) if obj.get("id") is not None else f"row {row}", row, turns, *answers,
                        group if isinstance(group, str) else None)


def _user(content: Any, marker: str, fail, t: int) -> tuple[str | None, int, int]:
    """Return (question with inline image markers or None, leading images, all images) of a user turn."""
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise fail(f"prompt.{t}.content", f"is {type(content).__name__}: give a list of typed content items")
    lead, total, parts = 0, 0, []
    for c, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "image":
            total += 1
            lead += not parts
            if parts:
                parts.append(marker)  # an image after text stays where it stands
        elif kind == "text":
            text = item.get("text") or ""
            if marker in text:
                raise fail(f"prompt.{t}.content.{c}.text", f"holds the image marker {marker!r}: mark each image "
                            "with a {\"type\": \"image\"} item")
            parts.append(text)
        else:
            raise fail(f"prompt.{t}.content.{c}.type", f"is {kind!r}: content items are 'image' or 'text'")
    return ("".join(parts) if parts else None), lead, total


def _text(content: Any, fail, field: str) -> str:
    """Return the text of an assistant turn's content (text only)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise fail(field, f"is {type(content).__name__}: give a list of typed content items")
    if any(not isinstance(i, dict) or i.get("type") != "text" for i in content):
        raise fail(field, "an assistant turn holds text items only (images go in user turns)")
    return "".join(i.get("text") or "" for i in content)


def _answer(value: Any, fail, field: str) -> str:
    """Return the answer text of ``chosen`` / ``rejected``: one assistant turn."""
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
            and value[0].get("role") == "assistant"):
        what = "plain text" if isinstance(value, str) else f"{len(value)} turns" if isinstance(value, list) else \
            type(value).__name__
        raise fail(field, f"is {what}: give one assistant turn ([{{\"role\": \"assistant\", \"content\": ...}}], "
                    "conversational)")
    return _text(value[0].get("content"), fail, f"{field}.0.content")
