"""Demonstration selection for ordinary in-context learning: random (seeded) and RICES.

Both exclude the query's own image and never repeat an image inside one context. RICES (Yang et al.,
as in OpenFlamingo's eval) ranks pool images by cosine similarity of their cached features and puts
the most similar demonstration last, nearest the query. ``RicesText`` (MMICES, Chen et al. 2023) takes the
top-K images so ranked, then reorders them by text similarity to the query, most similar last.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence

import numpy as np


def random_demos(rng: random.Random, pool_images: Sequence[Hashable], query_image: Hashable, k: int,
                 *, max_tries: int | None = None) -> list[int]:
    """Return up to ``k`` random pool indices whose images differ from the query's and from each other."""
    n = len(pool_images)
    used, picked = {query_image}, []
    tries = max_tries if max_tries is not None else 20 * k + 20
    for _ in range(tries):  # rejection sampling: pools are large, collisions rare
        if len(picked) == k:
            return picked
        i = rng.randrange(n)
        if pool_images[i] not in used:
            used.add(pool_images[i])
            picked.append(i)
    order = list(range(n))  # small or crowded pool: fall back to a full shuffle
    rng.shuffle(order)
    for i in order:
        if len(picked) == k:
            break
        if pool_images[i] not in used:
            used.add(pool_images[i])
            picked.append(i)
    return picked


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Return the rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class Rices:
    """Retrieval-based in-context example selection over a pool with one feature row per item."""

    def __init__(self, features: np.ndarray, images: Sequence[Hashable]) -> None:
        if len(features) != len(images):
            raise ValueError(f"{len(features)} feature rows for {len(images)} pool items")
        first: dict[Hashable, int] = {}
        self.items_of_image: list[list[int]] = []
        for i, img in enumerate(images):  # rank images, not items: items sharing an image are one choice
            if img not in first:
                first[img] = len(self.items_of_image)
                self.items_of_image.append([])
            self.items_of_image[first[img]].append(i)
        self.image_keys = list(first)
        self.image_index = first
        self.features = unit_rows(np.asarray(features)[[items[0] for items in self.items_of_image]])

    def select(self, query_features: np.ndarray, query_images: Sequence[Hashable], k: int, *,
               rng: random.Random | None = None, chunk: int = 1024) -> list[list[int]]:
        """Return, per query, ``k`` pool indices ordered by increasing similarity (most similar last)."""
        q = unit_rows(query_features)
        k_eff = min(k, len(self.image_keys))
        out: list[list[int]] = []
        for start in range(0, len(q), chunk):  # chunks bound the (queries x pool) similarity matrix
            sims = q[start:start + chunk] @ self.features.T
            for row, img in zip(sims, query_images[start:start + chunk], strict=True):
                top = self._top_images(row, img, k_eff)
                items = self.items_of_image
                out.append([items[j][rng.randrange(len(items[j]))] if rng else items[j][0] for j in top][-k:])
        return out

    def _top_images(self, row: np.ndarray, query_image: Hashable, k: int) -> np.ndarray:
        """Return the ``k`` pool images most similar by ``row`` (the query's own excluded), ascending similarity.

        Equal scores are ordered by pool position (the earlier one counts as more similar), at the top-k
        boundary too, so the result is deterministic. ``row`` is modified (the query's own image gets -inf).
        """
        own = self.image_index.get(query_image)
        if own is not None:
            row[own] = -np.inf
        if k <= 0:
            return np.zeros(0, np.int64)
        if k < len(row):
            kth = np.partition(row, len(row) - k)[len(row) - k]  # the k-th largest score
            top = np.flatnonzero(row >= kth)
        else:
            top = np.arange(len(row))
        top = top[np.isfinite(row[top])]
        return top[np.lexsort((-top, row[top]))][-k:]


class RicesText(Rices):
    """MMICES: the K pool images most similar to the query image, reordered by text similarity to the query.

    ``text_features`` has one row per pool item (its question or caption embedding); of an image's items the
    one whose text is most similar to the query's stands for it. K is ``prefilter`` (default 4 x shots), at
    least the shots.
    """

    def __init__(self, features: np.ndarray, images: Sequence[Hashable], text_features: np.ndarray, *,
                 prefilter: int | None = None) -> None:
        super().__init__(features, images)
        if len(text_features) != len(images):
            raise ValueError(f"{len(text_features)} text feature rows for {len(images)} pool items")
        self.text_features = unit_rows(text_features)
        self.prefilter = prefilter

    def select(self, query_features: np.ndarray, query_images: Sequence[Hashable], k: int, *,
               query_texts: np.ndarray, chunk: int = 1024) -> list[list[int]]:
        """Return, per query, ``k`` pool indices ordered by increasing text similarity (most similar last)."""
        q, qt = unit_rows(query_features), unit_rows(query_texts)
        if len(qt) != len(q):
            raise ValueError(f"{len(qt)} query text rows for {len(q)} queries")
        k_pre = min(max(self.prefilter or 4 * k, k), len(self.image_keys))
        out: list[list[int]] = []
        for start in range(0, len(q), chunk):
            sims = q[start:start + chunk] @ self.features.T
            texts = qt[start:start + chunk]
            for row, text, img in zip(sims, texts, query_images[start:start + chunk], strict=True):
                cand = self._top_images(row, img, k_pre)
                best, score = [], np.empty(len(cand), np.float32)
                for n, j in enumerate(cand):  # an image's best-matching item (first on ties) stands for it
                    items = self.items_of_image[j]
                    t = self.text_features[items] @ text
                    best.append(items[int(np.argmax(t))])
                    score[n] = t.max()
                # ascending text similarity, then image similarity, then pool position (earlier = more similar)
                order = np.lexsort((-cand, row[cand], score))
                out.append([best[o] for o in order][-k:])
        return out
