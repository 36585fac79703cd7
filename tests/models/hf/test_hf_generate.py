"""Batched left-padded generation of the HF adapter matches generating each context alone."""

from __future__ import annotations

import pytest
from hf_fixtures import picture, vqa_context


@pytest.mark.parametrize("beams", [1, 3])
def test_batched_generation_matches_unbatched(lmm, beams):
    contexts = [vqa_context(shots=2), ["Question:Is it? Short answer:"], [picture(5), "Output:"]]
    kw = dict(max_new_tokens=6, num_beams=beams, length_penalty=0.0)
    batched = lmm.generate(contexts, **kw)
    assert batched == [lmm.generate([c], **kw)[0] for c in contexts]
    assert all(isinstance(t, str) and lmm.end_of_chunk not in t for t in batched)


def test_generation_stops_at_the_end_marker(lmm):
    text = "red" + lmm.end_of_chunk + "more"
    assert lmm._strip(text) == "red"
    assert lmm.end_of_chunk.strip() and len(lmm.stop_token_ids()) >= 1
