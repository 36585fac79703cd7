"""Helpers of the evaluation tests (on the path through pyproject's pytest ``pythonpath``)."""

from __future__ import annotations


def error_line(result) -> str:
    """Return the one stderr line of a failed command (and check there is no traceback).

    Exit status 2 for a bad option value, 1 for bad input data (``symdpo.errors``)."""
    assert result.exit_code in (1, 2), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]
