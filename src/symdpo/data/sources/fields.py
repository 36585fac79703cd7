"""Typed access to the fields of one JSON item, raising errors that name the file, item and field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from symdpo.data.errors import DataError
from symdpo.data.paths import check_relpath
from symdpo.data.sources.jsonstream import json_kind


class Item:
    """A JSON object read from ``file`` as ``label`` (e.g. ``annotations[12]``) at ``line``."""

    def __init__(self, value: Any, file: object, label: str, line: Callable[[], int] | int | None) -> None:
        # ``line`` may be a callable: counting lines is only worth it once there is an error to report
        self.file, self.label, self._line = file, label, line
        if not isinstance(value, dict):
            raise self.error(f"expected an object, found {json_kind(value)}")
        self.value = value

    def error(self, message: str, field: str | None = None) -> DataError:
        """Return a DataError pointing at this item (and ``field``)."""
        line = self._line() if callable(self._line) else self._line
        return DataError(self.file, message, line=line, item=self.label, field=field)

    def get(self, name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
        """Return field ``name`` checked to be of ``kind`` (bools are never ints); None if optional and absent."""
        if name not in self.value:
            if optional:
                return None
            raise self.error("missing", name)
        v = self.value[name]
        if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            ok = False
        else:
            ok = isinstance(v, kind)
        if not ok:
            raise self.error(f"wrong type: found {json_kind(v)}", name)
        return v

    def text(self, name: str, *, optional: bool = False) -> str | None:
        """Return a non-empty string field (surrounding blanks removed)."""
        v = self.get(name, str, optional=optional)
        if v is None:
            return None
        v = v.strip()
        if not v:
            raise self.error("empty string", name)
        return v

    def ident(self, name: str) -> int | str:
        """Return an id field (an integer, or a non-empty string)."""
        v = self.get(name, (int, str))
        if isinstance(v, str) and not v.strip():
            raise self.error("empty id", name)
        return v

    def relpath(self, value: str, name: str) -> str:
        """Return ``value`` (built from field ``name``) as a safe relative path, or raise."""
        problem = check_relpath(value)
        if problem:
            raise self.error(f"unsafe image path {value!r}: {problem}", name)
        return value

    def texts(self, name: str, *, key: str | None = None) -> tuple[str, ...]:
        """Return a non-empty list of strings (or of objects' ``key`` strings) as a tuple."""
        values = self.get(name, list)
        if not values:
            raise self.error("empty list", name)
        out = []
        for j, v in enumerate(values):
            if key is not None:
                if not isinstance(v, dict) or not isinstance(v.get(key), str):
                    raise self.error(f"expected objects with a string '{key}'", f"{name}[{j}].{key}")
                v = v[key]
            elif not isinstance(v, str):
                raise self.error(f"expected a string, found {json_kind(v)}", f"{name}[{j}]")
            out.append(v.strip())
        return tuple(out)
