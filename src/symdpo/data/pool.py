"""A compact, columnar pool of VQA examples: strings interned once, one int32 column per field.

443k VQAv2 questions as Python objects would take over a gigabyte; as columns they take ~20 MB,
which is what keeps a full-size build within bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from symdpo.data.sources.types import VQAExample


class Interner:
    """Map strings to dense ids, first seen first."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.values: list[str] = []

    def __call__(self, s: str) -> int:
        """Return the id of ``s``, adding it if new."""
        i = self.ids.get(s)
        if i is None:
            i = self.ids[s] = len(self.values)
            self.values.append(s)
        return i


class VQAPool:
    """All examples of a VQA source; item ``i`` has ``images[image[i]]``, ``questions[question[i]]``, ..."""

    def __init__(self, source: str, examples: Iterable[VQAExample]) -> None:
        self.source = source
        strings = {name: Interner() for name in ("image", "question", "qtype", "answer")}
        cols: dict[str, list[int]] = {name: [] for name in strings}
        flat: list[int] = []
        offsets = [0]
        self.ids: list[str] = []
        seen: set[str] = set()
        intern_answer = strings["answer"]
        for ex in examples:
            if ex.id in seen:
                raise ValueError(f"duplicate example id {ex.id!r} in source {source}")
            seen.add(ex.id)
            self.ids.append(ex.id)
            for name, value in (("image", ex.image), ("question", ex.question),
                                ("qtype", ex.question_type), ("answer", ex.answer)):
                cols[name].append(strings[name](value))
            flat.extend([intern_answer(a) for a in ex.answers])
            offsets.append(len(flat))
        self.image, self.question, self.qtype, self.answer = (np.asarray(cols[n], np.int32) for n in cols)
        self.all_answers = np.asarray(flat, np.int32)
        self.offsets = np.asarray(offsets, np.int64)
        self.images, self.questions, self.qtypes, self.answers = (strings[n].values for n in strings)

    def __len__(self) -> int:
        """Return the number of examples."""
        return len(self.ids)

    def answers_of(self, i: int) -> list[str]:
        """Return all annotator answers of item ``i``."""
        return [self.answers[a] for a in self.all_answers[self.offsets[i]:self.offsets[i + 1]].tolist()]

    def keep(self, mask: np.ndarray) -> VQAPool:
        """Return this pool restricted to the items where ``mask`` is true (string tables shared)."""
        sub = object.__new__(VQAPool)
        sub.__dict__.update(self.__dict__)
        idx = np.flatnonzero(mask)
        sub.ids = [self.ids[i] for i in idx.tolist()]
        sub.image, sub.question, sub.qtype, sub.answer = (c[idx] for c in (self.image, self.question, self.qtype,
                                                                           self.answer))
        lengths = (self.offsets[1:] - self.offsets[:-1])[idx]
        sub.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        sub.all_answers = (np.concatenate([self.all_answers[self.offsets[i]:self.offsets[i + 1]] for i in idx.tolist()])
                           if len(idx) else np.zeros(0, np.int32))
        return sub
