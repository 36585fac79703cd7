"""Same-question demonstration contexts for SymDPO: who may stand beside a query.

Items are sorted by (group key, answer), so a question's group and the query's same-answer run inside it
are two contiguous ranges; sampling is then a few random draws per query, whatever the pool size.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Sequence

import numpy as np

from symdpo.data.pool import VQAPool


def int_array(a: np.ndarray) -> array:
    """Return a compact int32 array.array (fast scalar reads from Python, 4 bytes an item)."""
    return array("i", np.ascontiguousarray(a, dtype=np.int32).tobytes())


class _Groups:
    """Items in (key, answer) order; per item, the sorted-position bounds of its group and its answer run."""

    def __init__(self, key: np.ndarray, answer: np.ndarray) -> None:
        n = len(key)
        order = np.lexsort((answer, key))
        k, a = key[order], answer[order]
        new_group = np.r_[True, k[1:] != k[:-1]] if n else np.zeros(0, bool)
        new_run = new_group | (np.r_[True, a[1:] != a[:-1]] if n else np.zeros(0, bool))
        where = np.empty(n, np.int64)
        where[order] = np.arange(n)

        def bounds(starts_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            starts = np.flatnonzero(starts_mask)
            ends = np.r_[starts[1:], n]
            idx = np.cumsum(starts_mask) - 1
            return starts[idx][where], ends[idx][where]

        gs, ge = bounds(new_group)
        rs, re_ = bounds(new_run)
        self.order = int_array(order)
        self.gs, self.ge, self.rs, self.re = int_array(gs), int_array(ge), int_array(rs), int_array(re_)


def _draw(rng: random.Random, ranges: Sequence[tuple[int, int]], want: int, accept: Callable[[int], bool]) -> int:
    """Offer random positions from ``ranges`` to ``accept`` until ``want`` are accepted; return how many were."""
    sizes = [b - a for a, b in ranges]
    total = sum(sizes)
    got = 0
    if want <= 0 or total <= 0:
        return 0
    if total > 4 * want + 32:  # big range: rejection sampling, a handful of draws
        for _ in range(8 * want + 8):
            j = rng.randrange(total)
            r = 0
            while j >= sizes[r]:  # map j onto the union of the ranges
                j -= sizes[r]
                r += 1
            if accept(ranges[r][0] + j):
                got += 1
                if got == want:
                    return got
    positions = [p for a, b in ranges for p in range(a, b)]  # small or crowded range: shuffle it all
    rng.shuffle(positions)
    for p in positions:
        if accept(p):
            got += 1
            if got == want:
                break
    return got


class ContextSampler:
    """Draw k demonstrations for a query: same question (else same question type), >= 2 distinct answers,
    >= 1 with the query's answer, no image twice (the query's included).

    With ``features`` (one L2-normalised retrieval embedding per pool image) the demonstrations are retrieved,
    not drawn (RICES inside the group): the most similar image with the query's answer, the most similar with
    another answer, then the most similar of the rest; in context order the most similar stands last.
    """

    LEVELS = ("same_question", "same_type")

    def __init__(self, pool: VQAPool, k_min: int, k_max: int, *, features: np.ndarray | None = None) -> None:
        self.k_min, self.k_max = k_min, k_max
        self.image = int_array(pool.image)
        self._groups = (_Groups(pool.question, pool.answer), _Groups(pool.qtype, pool.answer))
        self.features = features
        if features is not None:
            if len(features) != len(pool.images):
                raise ValueError(f"{len(features)} feature rows for {len(pool.images)} pool images")
            self._image_np = np.asarray(pool.image, dtype=np.int64)
            self._orders = [np.frombuffer(g.order, dtype=np.int32).astype(np.int64) for g in self._groups]

    def sample(self, rng: random.Random, query: int) -> tuple[str, list[int]] | None:
        """Return (level, demonstration items in context order), or None when no valid context exists."""
        k = rng.randint(self.k_min, self.k_max)
        for i, (level, groups) in enumerate(zip(self.LEVELS, self._groups, strict=True)):
            demos = self._sample_in(groups, rng, query, k) if self.features is None else self._retrieve_in(i, query, k)
            if demos is not None:
                return level, demos
        return None

    def _retrieve_in(self, level: int, query: int, k: int) -> list[int] | None:
        """Return the group's demonstrations most similar to the query's image (most similar last), or None."""
        g = self._groups[level]
        gs, ge, rs, re_ = g.gs[query], g.ge[query], g.rs[query], g.re[query]
        if re_ - rs < 2 or (ge - gs) - (re_ - rs) < 1:
            return None
        items = self._orders[level][gs:ge]
        feats = self.features
        sims = feats[self._image_np[items]] @ feats[self._image_np[query]]
        ranked = np.lexsort((items, -sims))  # most similar first; ties by pool index, so every run agrees
        same_answer = (np.arange(gs, ge) >= rs) & (np.arange(gs, ge) < re_)
        used, picked, sim_of = {self.image[query]}, [], {}

        def take(mask: np.ndarray | None, want: int) -> None:
            for j in ranked:
                if want == 0:
                    return
                item = int(items[j])
                if (mask is None or mask[j]) and self.image[item] not in used:
                    used.add(self.image[item])
                    picked.append(item)
                    sim_of[item] = float(sims[j])
                    want -= 1

        take(same_answer, 1)
        take(~same_answer, 1)
        if len(picked) < 2:
            return None
        take(None, k - 2)
        if len(picked) < self.k_min:
            return None
        return sorted(picked, key=lambda item: (sim_of[item], -item))  # ascending: the most similar last

    def _sample_in(self, g: _Groups, rng: random.Random, query: int, k: int) -> list[int] | None:
        """Return demonstrations from the query's group in ``g``, or None if the group cannot supply them."""
        gs, ge, rs, re_ = g.gs[query], g.ge[query], g.rs[query], g.re[query]
        if re_ - rs < 2 or (ge - gs) - (re_ - rs) < 1:
            return None  # no other item with the query's answer, or none with another answer
        image, order = self.image, g.order
        used = {image[query]}  # rejecting used images also rejects the query and items already picked
        picked: list[int] = []

        def accept(pos: int) -> bool:
            item = order[pos]
            if image[item] in used:
                return False
            used.add(image[item])
            picked.append(item)
            return True

        if not _draw(rng, [(rs, re_)], 1, accept) or not _draw(rng, [(gs, rs), (re_, ge)], 1, accept):
            return None
        _draw(rng, [(gs, ge)], k - 2, accept)
        if len(picked) < self.k_min:
            return None
        rng.shuffle(picked)  # the matching demonstration may stand anywhere, not always first
        return picked
