"""Too-long contexts lose whole demonstrations from the front, never the query, and say so once."""

from __future__ import annotations

import logging

import pytest
from hf_fixtures import vqa_context


def test_drops_front_demonstrations_only(lmm, caplog):
    full = vqa_context(shots=3)
    answer = "circle" + lmm.end_of_chunk
    without_first = full[2:]
    n_keep = lmm.tokenize([without_first], [answer]).input_ids.shape[1]
    old = lmm.encoder.max_length
    lmm.encoder.max_length, lmm.encoder.warned = n_keep, False
    try:
        with caplog.at_level(logging.WARNING, logger="symdpo.models.hf"):
            batch = lmm.tokenize([full], [answer])
            lmm.tokenize([full], [answer])
        assert batch.dropped == [1]
        assert batch.input_ids[0].tolist() == lmm.tokenize([without_first], [answer]).input_ids[0].tolist()
        assert sum("dropped" in r.message for r in caplog.records) == 1
        lmm.encoder.max_length = 5
        with pytest.raises(ValueError, match="query alone"):
            lmm.tokenize([full], [answer])
    finally:
        lmm.encoder.max_length = old


def test_generation_reserves_room(lmm):
    ctx = vqa_context(shots=2)
    n = lmm.tokenize([ctx]).input_ids.shape[1]
    old = lmm.encoder.max_length
    lmm.encoder.max_length = n + 3
    try:
        assert lmm.tokenize([ctx], reserve=3).dropped == [0]
        assert lmm.tokenize([ctx], reserve=4).dropped == [1]
    finally:
        lmm.encoder.max_length = old
