"""Stream the items of the big arrays of a JSON object without holding the whole file in memory.

VQAv2's annotation file is ~330 MB; ``json.load`` would build ~4.4 M answer dicts (2-3 GB) only to
throw most of them away. Here each array item is decoded alone by the C scanner (``raw_decode``), so
memory stays at one chunk plus one item, whatever the file size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symdpo.data.errors import DataError

_NOT_BLANK = re.compile(r"[^ \t\n\r]")
_DECODER = json.JSONDecoder()
_NUMBER_CHARS = frozenset("0123456789.eE+-")
_MAX_ITEM_CHARS = 64 << 20  # an item larger than this is malformed input, not a real annotation


def json_kind(value: Any) -> str:
    """Return the JSON name of a Python value's type ('object', 'list', 'string', ...)."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


class JsonStream:
    """One pass over a JSON file whose top level is an object; see ``entries``."""

    def __init__(self, path: str | Path, *, chunk_chars: int = 1 << 22) -> None:
        self.path = Path(path)
        self._chunk = chunk_chars
        try:
            self._file = open(self.path, encoding="utf-8")  # noqa: SIM115 - closed by entries()
        except FileNotFoundError:
            raise DataError(self.path, "file not found") from None
        except IsADirectoryError:
            raise DataError(self.path, "is a directory: give the JSON file") from None
        self._buf, self._pos, self._lines, self._item_pos, self._eof = "", 0, 0, 0, False

    def line(self) -> int:
        """Return the 1-based line where the item last yielded starts (for error messages)."""
        return self._lines + self._buf.count("\n", 0, self._item_pos) + 1

    def error(self, message: str, *, item: str | None = None, field: str | None = None) -> DataError:
        """Return a DataError located at the current item of this file."""
        return DataError(self.path, message, line=self.line(), item=item, field=field)

    def _fill(self) -> bool:
        """Append the next chunk to the buffer (dropping what was consumed); return False at end of file."""
        if self._eof:
            return False
        try:
            data = self._file.read(self._chunk)
        except UnicodeDecodeError as e:
            raise DataError(self.path, f"not UTF-8 text ({e.reason})") from None
        if not data:
            self._eof = True
            return False
        keep = min(self._pos, self._item_pos)
        self._lines += self._buf.count("\n", 0, keep)
        self._buf = self._buf[keep:] + data
        self._pos -= keep
        self._item_pos -= keep
        return True

    def _peek(self) -> str:
        """Return the next non-blank character without consuming it ('' at end of file)."""
        while True:
            m = _NOT_BLANK.search(self._buf, self._pos)
            if m:
                self._pos = m.start()
                return self._buf[self._pos]
            self._pos = len(self._buf)
            if not self._fill():
                return ""

    def _expect(self, chars: str, what: str) -> str:
        """Consume and return the next character if it is one of ``chars``; else raise naming ``what``."""
        c = self._peek()
        if c == "":
            raise self.error(f"unexpected end of file (truncated?) while expecting {what}")
        if c not in chars:
            raise self.error(f"invalid JSON: expected {what}, found {c!r}")
        self._pos += 1
        return c

    def _value(self) -> Any:
        """Decode the JSON value at the cursor, reading more of the file while it is cut off."""
        self._peek()
        self._item_pos = self._pos
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as e:
                if len(self._buf) - self._pos < _MAX_ITEM_CHARS and self._fill():
                    continue
                if self._eof and len(self._buf) - self._pos < _MAX_ITEM_CHARS:
                    raise self.error(f"invalid or truncated JSON: {e.msg}") from None
                raise self.error(f"invalid JSON: {e.msg}") from None
            if (end >= len(self._buf) or self._buf[end] in _NUMBER_CHARS) and self._fill():
                continue  # a number cut by the chunk end ("-0" of "-0.5") parses: read on and decode again
            self._pos = end
            return value

    def entries(self, stream_keys: frozenset[str] | set[str]) -> Iterator[tuple[str, int | None, Any]]:
        """Yield (key, None, value) per top-level entry, or (key, i, item) per item of a streamed list."""
        try:
            first = self._peek()
            if first == "":
                raise DataError(self.path, "empty file")
            if first != "{":
                kind = "a list" if first == "[" else f"{first!r}"
                raise self.error(f"wrong JSON type: expected an object at the top level, found {kind}")
            self._pos += 1
            if self._peek() == "}":
                self._pos += 1
            else:
                while True:
                    if self._peek() != '"':
                        self._expect('"', "a key")
                    key = self._value()
                    self._expect(":", "':'")
                    if key in stream_keys:
                        if self._peek() != "[":
                            raise self.error(f"expected a list, found {json_kind(self._value())}", field=key)
                        yield from self._items(key)
                    else:
                        yield key, None, self._value()
                    if self._expect(",}", "',' or '}'") == "}":
                        break
            if self._peek() != "":
                raise self.error("extra data after the top-level object")
        finally:
            self._file.close()

    def _items(self, key: str) -> Iterator[tuple[str, int, Any]]:
        """Yield (key, i, item) for each item of the list at the cursor."""
        self._pos += 1
        if self._peek() == "]":
            self._pos += 1
            return
        i = 0
        while True:
            item = self._value()
            yield key, i, item
            i += 1
            if self._expect(",]", "',' or ']'") == "]":
                return
