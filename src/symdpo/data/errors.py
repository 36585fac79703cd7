"""The one error type of the data pipeline: it always says where (file, line or item, field)."""

from __future__ import annotations

from symdpo.errors import SymdpoError


class DataError(SymdpoError):
    """Bad input data; the message names the file, the line or item, and the field."""

    def __init__(self, file: object, message: str, *, line: int | None = None, item: str | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.item, self.field = str(file), line, item, field
        where = self.file + (f":{line}" if line is not None else "")
        if item is not None:
            where += f": {item}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")


class BadImageError(DataError):
    """An image that cannot be used; ``reason`` is a short key counted in the manifest."""

    def __init__(self, file: object, reason: str, message: str) -> None:
        self.reason, self.detail = reason, message
        super().__init__(file, message)
