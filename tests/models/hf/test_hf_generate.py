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


@pytest.mark.parametrize("beams", [2, 3])
def test_beam_search_gives_hfs_own_tokens(lmm, beams):
    """Compared with: transformers' own beam search on the processor's inputs (each beam prefilled apart).
    Families without ``prefill_once`` (IDEFICS v1, Gemma 3) run that beam search itself: same check."""
    import torch
    from transformers import GenerationConfig

    lmm.train(False)
    contexts = [vqa_context(seed=s, shots=2) for s in range(3)] + [["Question:Is it? Short answer:"], [picture(5), "Output:"]]
    batch = lmm.tokenize(contexts, reserve=6)
    tok = lmm.processor.tokenizer
    config = GenerationConfig(max_new_tokens=6, num_beams=beams, length_penalty=0.0, do_sample=False,
                              eos_token_id=lmm.stop_token_ids(), pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        theirs = lmm.hf.generate(**lmm._cast_pixels(batch.model_inputs(lmm.device)), generation_config=config)
        if lmm.spec.prefill_once:
            ours = lmm.hf.generate(**lmm._prefilled(lmm._cast_pixels(batch.model_inputs(lmm.device)), beams),
                                   generation_config=config)
            assert torch.equal(ours, theirs)
    width = batch.input_ids.shape[1]
    expected = [lmm._strip(t) for t in tok.batch_decode(theirs[:, width:], skip_special_tokens=False)]
    assert lmm.generate(contexts, max_new_tokens=6, num_beams=beams, length_penalty=0.0) == expected
