"""The tiny Flamingo (OpenFlamingo protocol, answers tokenized alone) scores the ids its conversation holds.

Compared against: the tokenizer's character offsets on the full text (context + answer): the ids covering the
answer's characters must be the ones scored. OpenFlamingo's cue ``Short answer:`` ends in no space, so the
answer tokenized alone is already the model's view; answers start with a word, a digit and a symbol.
"""

from __future__ import annotations

import pytest
import torch

from symdpo.models.prompts import AGNOSTIC_END
from symdpo.models.registry import load_model


@pytest.mark.parametrize("answer", ["red", "3 cats", "$5", "Red"])
def test_flamingo_scores_the_conversations_own_ids(answer):
    lmm = load_model("tiny")
    image = torch.rand(3, 32, 32)
    context = [image, "Question:What color? Short answer:blue" + AGNOSTIC_END + "\n", image,
               "Question:What is it? Short answer:"]
    batch = lmm.tokenize([context], [answer + AGNOSTIC_END])
    scored = batch.input_ids[0][batch.answer_mask[0]].tolist()
    text = "".join(it if isinstance(it, str) else "<image>" for it in context)
    enc = lmm.tokenizer(text + answer + AGNOSTIC_END, return_offsets_mapping=True)
    assert scored == [i for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True) if e > len(text)]
