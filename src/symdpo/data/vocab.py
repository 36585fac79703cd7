"""The symbol vocabulary: meaningless pseudo-words that replace demonstration answers.

The built-in list is ``symdpo.pseudowords.builtin_symbols``; a user list can add to it or replace it. Every
symbol that equals an answer string, an answer word or a question word of the source is removed, so a symbol
can never be read as a real answer; so is every symbol that spells the beginning of an answer word ("bro" of
"brown"): trained to answer it and stop, a model learns to stop after the first piece of that answer (the
tiny demo model answered "bro" for "brown" until this rule).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from symdpo.data.errors import DataError
from symdpo.pseudowords import builtin_symbols

_WORD = re.compile(r"[a-z0-9']+")


def read_symbol_file(path: str | Path) -> list[str]:
    """Return the symbols of a text file (one per line; blank lines and ``#`` comments ignored)."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        if any(c.isspace() for c in s):
            raise DataError(path, f"a symbol must be one word, got {s!r}", line=n)
        out.append(s)
    return out


def words_of(texts: Iterable[str]) -> set[str]:
    """Return the lower-cased words of the texts."""
    out: set[str] = set()
    for t in texts:
        out.update(_WORD.findall(t.lower()))
    return out


class SymbolVocabulary:
    """Candidate symbols minus everything that collides with the source's answers and question words."""

    def __init__(self, candidates: list[str], forbidden: set[str], prefixes: set[str] = frozenset()) -> None:
        seen: set[str] = set()
        self.symbols: list[str] = []
        self.excluded: list[str] = []
        for s in candidates:
            low = s.lower()
            if low in seen:
                continue
            seen.add(low)
            bad = low in forbidden or low in prefixes or words_of([s]) & forbidden
            (self.excluded if bad else self.symbols).append(s)

    @classmethod
    def for_source(cls, answers: Iterable[str], questions: Iterable[str], *, user: list[str] | None = None,
                   builtin: bool = True) -> SymbolVocabulary:
        """Return the vocabulary for a source with these answer strings and question strings."""
        answers = list(answers)
        forbidden = {a.lower() for a in answers} | words_of(answers) | words_of(questions)
        prefixes = {w[:i] for w in words_of(answers) for i in range(1, len(w))}
        return cls((builtin_symbols() if builtin else []) + (user or []), forbidden, prefixes)

    def describe(self) -> dict:
        """Return the manifest entry: sizes, exclusions, a digest and the full list."""
        return {"size": len(self.symbols), "excluded": self.excluded,
                "sha256": hashlib.sha256("\n".join(self.symbols).encode()).hexdigest(), "symbols": self.symbols}
