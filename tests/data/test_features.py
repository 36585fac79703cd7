"""The feature cache: keyed by (content hash, encoder id), only misses are encoded, safe for two writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from symdpo.data.features import FeatureCache, content_hash, encode_images


class ProjectionEncoder:
    """A deterministic tiny encoder: mean-pool pixels to 8x8 and project randomly to 16 dims."""

    def __init__(self) -> None:
        self.weight = torch.Generator().manual_seed(0)
        self.proj = torch.randn(3 * 8 * 8, 16, generator=self.weight)
        self.calls = 0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += len(pixels)
        pooled = torch.nn.functional.adaptive_avg_pool2d(pixels, 8).flatten(1)
        return pooled @ self.proj


def test_cache_hits_skip_the_encoder(tmp_path, data_helpers):
    write_image = data_helpers.write_image
    for i in range(5):
        write_image(tmp_path / "img" / f"{i}.jpg", i)
    write_image(tmp_path / "img" / "copy.jpg", 0)  # same bytes as 0.jpg: same key
    images = [f"{i}.jpg" for i in range(5)] + ["copy.jpg"]
    enc = ProjectionEncoder()
    cache = FeatureCache(tmp_path / "cache", "proj-v1")
    first = encode_images(tmp_path / "img", images, enc, cache=cache, batch_size=2)
    assert first.shape == (6, 16) and enc.calls == 6
    np.testing.assert_array_equal(first[0], first[5])
    again = encode_images(tmp_path / "img", images, enc, cache=cache)
    assert enc.calls == 6  # everything came from the cache
    np.testing.assert_array_equal(first, again)
    other = FeatureCache(tmp_path / "cache", "proj-v2")  # another encoder id never shares entries
    encode_images(tmp_path / "img", images[:1], enc, cache=other)
    assert enc.calls == 7 and other.dir != cache.dir


def test_damaged_entry_is_recomputed(tmp_path, data_helpers):
    data_helpers.write_image(tmp_path / "a.jpg", 1)
    enc = ProjectionEncoder()
    cache = FeatureCache(tmp_path / "cache", "proj")
    ref = encode_images(tmp_path, ["a.jpg"], enc, cache=cache)
    cache.path(content_hash(tmp_path / "a.jpg")).write_bytes(b"\x93NUMPY garbage")
    np.testing.assert_array_equal(encode_images(tmp_path, ["a.jpg"], enc, cache=cache), ref)
    assert enc.calls == 2


WRITER = """
import sys, numpy as np
from symdpo.data.features import FeatureCache
cache = FeatureCache(sys.argv[1], "enc")
for round in range(30):
    for k in range(20):
        key = f"{k:064x}"
        cache.put(key, np.full(4096, k, np.float32))
        got = cache.get(key)
        assert got is not None and got.shape == (4096,) and (got == k).all(), key
"""


def test_two_processes_writing_the_same_entries(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    cache = FeatureCache(tmp_path, "enc")
    for k in range(20):
        np.testing.assert_array_equal(cache.get(f"{k:064x}"), np.full(4096, k, np.float32))
    assert not list(Path(tmp_path).rglob("*.tmp"))  # no temp file left behind
