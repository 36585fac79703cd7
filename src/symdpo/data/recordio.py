"""Atomic JSONL/Parquet record files, and reading them back with every record validated.

Outputs are written to temp files beside their targets and renamed into place only when the whole
build succeeded: an error at any point leaves no output file, partial or otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from symdpo.atomic import apply_umask, temp_file
from symdpo.data.errors import DataError
from symdpo.data.records import PreferenceRecord, Record, SFTRecord

_DEMO = pa.struct([("image", pa.int32()), ("question", pa.string()), ("answer", pa.string()),
                   ("original_answer", pa.string())])
_QUERY = pa.struct([("image", pa.int32()), ("question", pa.string()), ("answer", pa.string()),
                    ("answers", pa.list_(pa.string()))])
_COMMON = [("id", pa.string()), ("source", pa.string()), ("images", pa.list_(pa.string())),
           ("context", pa.list_(_DEMO)), ("query", _QUERY), ("kind", pa.string())]
ARROW_SCHEMAS = {
    PreferenceRecord: pa.schema(_COMMON + [("chosen", pa.string()), ("rejected", pa.string()),
                                           ("rejected_type", pa.string()),
                                           ("symbols", pa.map_(pa.string(), pa.string()))]),
    SFTRecord: pa.schema(_COMMON + [("target", pa.string())]),
}


def format_of(path: str | Path) -> str:
    """Return 'parquet' for ``.parquet`` files, else 'jsonl'."""
    return "parquet" if Path(path).suffix.lower() == ".parquet" else "jsonl"


@contextlib.contextmanager
def atomic_outputs(*targets: Path) -> Iterator[list[Path]]:
    """Yield temp paths for ``targets``; rename them all into place on success, delete them on error."""
    temps = []
    try:
        for t in targets:
            temps.append(temp_file(t))
        yield temps
        for tmp in temps:
            apply_umask(tmp)  # a writer that recreated the file chose its own mode
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        for tmp, t in zip(temps, targets, strict=True):
            os.replace(tmp, t)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


class RecordWriter:
    """Append records of one type to a JSONL or Parquet file (Parquet in row groups of ``batch``)."""

    def __init__(self, path: Path, fmt: str, model: type[Record], *, batch: int = 4096) -> None:
        self.fmt, self.schema, self.batch = fmt, ARROW_SCHEMAS[model], batch
        self._rows: list[dict[str, Any]] = []
        if fmt == "parquet":
            self._pq = pq.ParquetWriter(path, self.schema, compression="zstd")
        else:
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: Record) -> None:
        """Append one record."""
        if self.fmt == "parquet":
            self._rows.append(record.model_dump())
            if len(self._rows) >= self.batch:
                self._flush()
        else:
            self._file.write(record.model_dump_json())
            self._file.write("\n")

    def _flush(self) -> None:
        """Write the buffered rows as one Parquet row group."""
        if self._rows:
            self._pq.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        """Flush and close the file."""
        if self.fmt == "parquet":
            self._flush()
            self._pq.close()
        else:
            self._file.close()


def _as_data_error(path: Path, e: ValidationError, *, line: int | None = None, item: str | None = None) -> DataError:
    """Return the first validation problem as a DataError naming the file, line and field."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if not field and msg.startswith("Value error, ") and ": " in msg:
        field, msg = msg[len("Value error, "):].split(": ", 1)  # our invariants prefix the field name
    return DataError(path, msg, line=line, item=item, field=field or None)


def parse_record(path: Path, obj: Any, *, line: int | None = None, item: str | None = None) -> Record:
    """Return ``obj`` validated as a preference record (has 'chosen') or an SFT record (has 'target')."""
    if not isinstance(obj, dict):
        raise DataError(path, "a record must be a JSON object", line=line, item=item)
    model = PreferenceRecord if "chosen" in obj else SFTRecord if "target" in obj else None
    if model is None:
        raise DataError(path, "neither a preference record nor an SFT record", line=line, item=item,
                        field="chosen")
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise _as_data_error(path, e, line=line, item=item) from None


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield the validated records of a JSONL or Parquet file; a bad one raises naming file, line, field."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a directory: give a .jsonl or .parquet record file")
    if not path.is_file():
        raise DataError(path, "file not found")
    if format_of(path) == "parquet":
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        except (pa.ArrowException, OSError) as e:
            raise DataError(path, f"not a readable Parquet file ({e})") from None
        row = 0
        for batch in batches:
            for obj in batch.to_pylist():
                if isinstance(obj.get("symbols"), list):
                    obj["symbols"] = dict(obj["symbols"])  # Arrow maps come back as (key, value) pairs
                yield parse_record(path, obj, item=f"row {row}")
                row += 1
        return
    with open(path, "rb") as f:  # bytes, so that text that is not UTF-8 is reported with its line
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, f"not UTF-8 text (byte {e.start + 1} of the line): a .jsonl record file holds "
                                      "one JSON record a line; give one written by `symdpo data build`", line=n) from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(path, f"invalid JSON ({e.msg}, column {e.colno})", line=n) from None
            yield parse_record(path, obj, line=n)
