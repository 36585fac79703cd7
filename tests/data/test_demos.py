"""Demonstration selection: random (seeded) and RICES (most similar last, own image excluded)."""

from __future__ import annotations

import random

import numpy as np

from symdpo.data.demos import Rices, random_demos


def test_random_demos_exclude_query_image_and_repeats():
    images = [i // 2 for i in range(40)]  # two items per image
    for seed in range(20):
        picked = random_demos(random.Random(seed), images, 3, 8)
        assert len(picked) == 8
        imgs = [images[i] for i in picked]
        assert 3 not in imgs and len(set(imgs)) == 8
    assert random_demos(random.Random(1), images, 3, 8) == random_demos(random.Random(1), images, 3, 8)
    assert random_demos(random.Random(1), images, 3, 8) != random_demos(random.Random(2), images, 3, 8)


def test_random_demos_small_pool_returns_what_exists():
    assert sorted(random_demos(random.Random(0), ["a", "b", "a", "c"], "a", 5)) == [1, 3]


def test_rices_matches_brute_force():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, 12)).astype(np.float32)
    images = [f"im{i // 3}" for i in range(60)]  # three questions per image share features
    feats = feats[[3 * (i // 3) for i in range(60)]]
    rices = Rices(feats, images)
    queries = rng.normal(size=(7, 12)).astype(np.float32)
    q_images = ["im0", "im5", "none", "im19", "im2", "im3", "im4"]
    got = rices.select(queries, q_images, k=4)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    for q, img, demos in zip(queries, q_images, got, strict=True):
        sims = {images[i]: float(unit[i] @ (q / np.linalg.norm(q))) for i in range(60) if images[i] != img}
        best = sorted(sims, key=sims.get)[-4:]  # ascending: most similar last
        assert [images[d] for d in demos] == best
        assert img not in [images[d] for d in demos]


def test_rices_with_rng_picks_any_item_of_the_image():
    feats = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3]]
    rices = Rices(feats, ["a", "a", "b", "c", "d"])
    seen = {rices.select(np.eye(4, dtype=np.float32)[:1], ["z"], 1, rng=random.Random(s))[0][0] for s in range(20)}
    assert seen == {0, 1}
