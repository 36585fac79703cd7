"""The per-image cache of evaluation (models/hf/image_cache.py) against the model's own processor and forward.

Compared with: the HF processor called on the whole context (ids and every image tensor), the HF model's own
scores and generations without the cache. Counted: each distinct image processed and encoded once.
"""

from __future__ import annotations

import pytest
import torch
from hf_fixtures import load, picture, vqa_context

from symdpo.models.hf.image_cache import ImageCache

CACHED = ["tiny-qwen2-vl", "tiny-qwen3-vl"]


def contexts() -> list[list]:
    """Return three contexts whose images recur (within a context and across them), in two sizes."""
    a, b, q = picture(1), picture(2, 64, 48), picture(3)
    return [[a, "Question:What color? Short answer:red<|endofchunk|>", b, "Question:What shape? Short answer:"],
            [b, "Question:Is it? Short answer:yes<|endofchunk|>", a, "Question:What color? Short answer:"],
            [q, "Output:a circle<|endofchunk|>", q, "Output:"]]


@pytest.mark.parametrize("name", CACHED)
def test_processor_output_equals_the_processors_own(name):
    lmm = load(name)
    plain = lmm.tokenize(contexts())
    with lmm.image_cache() as cache:
        cached = lmm.tokenize(contexts())
        again = lmm.tokenize(contexts())
    assert cache.counts["processed"] == 3 and cache.counts["processor_hits"] == 3 + 6  # a, b, q once each
    for batch in (cached, again):
        assert torch.equal(batch.input_ids, plain.input_ids)
        assert batch.extras.keys() == plain.extras.keys()
        for key, value in plain.extras.items():
            assert torch.equal(batch.extras[key], value), key


@pytest.mark.parametrize("name", CACHED)
def test_scores_and_generations_equal_the_uncached_model(name):
    lmm = load(name)
    lmm.train(False)
    answers = ["red", "blue", "a square"]
    kw = dict(max_new_tokens=5, num_beams=3, length_penalty=0.0)
    scores, texts = lmm.score(contexts(), answers), lmm.generate(contexts(), **kw)
    with lmm.image_cache() as cache:
        cached_scores = lmm.score(contexts(), answers)
        cached_texts = lmm.generate(contexts(), **kw)
        encoded = cache.encoded
        lmm.generate(contexts(), **kw)
    torch.testing.assert_close(cached_scores, scores, rtol=1e-5, atol=1e-6)
    assert cached_texts == texts
    assert encoded == 3  # three distinct images, though 6 slots per call and 3 beams each in generate
    assert cache.encoded == 3 and cache.hits > 0


def test_the_cache_is_gone_after_the_block():
    lmm = load("tiny-qwen2-vl")
    processor = lmm.processor.image_processor
    with ImageCache(lmm.hf, lmm.processor):
        assert not torch.is_grad_enabled()
        assert lmm.processor.image_processor is not processor
    assert torch.is_grad_enabled()
    assert lmm.processor.image_processor is processor
    assert "get_image_features" not in vars(lmm.hf.model)  # the class's own method again


def test_families_without_a_row_layout_cache_nothing():
    lmm = load("tiny-idefics3")
    with lmm.image_cache() as cache:
        assert cache is None


def test_a_tiny_cache_evicts_and_still_answers_right():
    lmm = load("tiny-qwen2-vl")
    lmm.train(False)
    context = vqa_context(seed=4, shots=2)
    expected = lmm.score([context], ["red"])
    with ImageCache(lmm.hf, lmm.processor, max_bytes=1) as cache:  # room for one entry per store
        torch.testing.assert_close(lmm.score([context], ["red"]), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lmm.score([context], ["red"]), expected, rtol=1e-5, atol=1e-6)
    assert len(cache.features.items) == 1 and cache.encoded == 3 + 2  # only the last image stays between calls
