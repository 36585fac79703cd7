"""Per-item predictions streamed to JSONL: one line per item, flushed, so a killed run loses at most a line.

Each process appends to its own ``predictions/part-<rank>.jsonl``. On restart every part file is read back
(a world size may change between runs) and the finished items are skipped. A last line without its newline
was cut off by the kill: it is dropped, and the writer truncates its own file back to the last whole line
before appending, so no line is ever glued onto a fragment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from symdpo.eval.errors import EvalError

# A prediction row is identified by its condition and its item id.
KEY_FIELDS = ("task", "shots", "trial", "demo_images", "query_image", "demo_labels", "id")
DEFAULTS = {"demo_labels": "real"}  # fields that rows written before they existed lack
Key = tuple


def row_key(row: dict[str, Any]) -> Key:
    """Return the identity of a prediction row: (task, shots, trial, demo_images, query_image, demo_labels, id)."""
    return tuple(row.get(f, DEFAULTS[f]) if f in DEFAULTS else row[f] for f in KEY_FIELDS)


def part_path(pred_dir: str | Path, rank: int) -> Path:
    """Return the predictions file that process ``rank`` appends to."""
    return Path(pred_dir) / f"part-{rank:03d}.jsonl"


def _whole_lines(path: Path) -> tuple[list[str], int]:
    """Return the complete lines of ``path`` and the byte length they cover (a cut-off tail excluded)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # 0 when there is no whole line at all
    return data[:end].decode("utf-8").splitlines(), end


def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the rows of one predictions file, dropping a cut-off last line; a bad whole line is an error."""
    path = Path(path)
    lines, _ = _whole_lines(path)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row_key(row)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise EvalError(f"{path}:{n}: not a prediction row ({e}); delete the file to recompute it") from None
        yield row


def read_all(pred_dir: str | Path) -> dict[Key, dict[str, Any]]:
    """Return every prediction row under ``pred_dir`` by key (the first copy of a duplicated key wins)."""
    rows: dict[Key, dict[str, Any]] = {}
    for path in sorted(Path(pred_dir).glob("part-*.jsonl")):
        for row in read_rows(path):
            rows.setdefault(row_key(row), row)
    return rows


class PredictionWriter:
    """Appends prediction rows to one file, one flushed line each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _, end = _whole_lines(self.path)
            os.truncate(self.path, end)  # drop the fragment a kill left behind
        self._file: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one JSON line and flush it to the OS."""
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (fsync first, so a finished run survives a power cut)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
