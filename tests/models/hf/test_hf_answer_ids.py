"""The ids symdpo scores as an answer are the ids the model reads for those characters in the whole conversation.

Compared against: the family's processor run on the full rendered conversation (context text + answer, its
images), whose ids must equal symdpo's row, and the tokenizer's character offsets on that text, which say
which of those ids cover the answer's characters (the cue's space included, as the model reads it). Answers
start with a space-sensitive word, a digit and a symbol; every family in its default prompt style.
"""

from __future__ import annotations

import pytest
from hf_fixtures import FAMILY_PRESETS, VARIANT_PRESETS, load, picture

from symdpo.eval.prompts import PromptItem, render_context
from symdpo.models.prompts import move_trailing_spaces, to_interleaved

ANSWERS = ["red", "3 cats", "$5", "Red"]


def _conversation(lmm, answer: str):
    fmt = lmm.prompt_format("vqa")
    demos = [PromptItem(picture(1), {"question": "What color?", "answer": "blue"})]
    text, images = render_context(fmt, demos, PromptItem(picture(2), {"question": "What is it?"}))
    return to_interleaved(text, images, fmt.image_marker), answer + fmt.end_of_chunk


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("name", FAMILY_PRESETS + VARIANT_PRESETS)
def test_scored_ids_are_the_conversations_own(name, answer):
    lmm = load(name)
    context, continuation = _conversation(lmm, answer)
    batch = lmm.tokenize([context], [continuation])
    row = batch.input_ids[0][batch.attention_mask[0].bool()].tolist()
    scored = batch.input_ids[0][batch.answer_mask[0]].tolist()

    # the whole conversation as one text, through the family's processor (no answer tokenized on its own)
    items = lmm.encoder.normalise(context[:-1] + [context[-1] + continuation])
    whole, _ = lmm.spec.encode(lmm.processor, items)
    assert row == whole

    # which of the conversation's tokens cover the answer's characters (from the end of the stripped cue)
    text = items[-1]
    start = len(move_trailing_spaces(lmm.encoder.normalise([context[-1]])[0])[0])
    enc = lmm.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    answer_ids = [i for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True) if e > start]
    assert scored == answer_ids
    assert whole[-len(answer_ids):] == answer_ids
    if lmm.encoder.moved_spaces(context):  # a chat cue's space is read as the answer's
        assert lmm.tokenizer.decode(scored).startswith(" ")


def test_generation_starts_after_the_cue_and_drops_its_space(monkeypatch):
    """A chat context is fed up to "Assistant:" (the template's generation prompt); the model's " red" is "red"."""
    from hf_fixtures import native_context

    lmm = load("tiny-smolvlm")
    context = native_context(lmm)
    ids = lmm.tokenize([context]).input_ids[0]
    assert lmm.tokenizer.decode(ids).endswith("<end_of_utterance>\nAssistant:")
    written = lmm.tokenizer(" red" + lmm.end_of_chunk, add_special_tokens=False, return_tensors="pt").input_ids

    def fake_generate(input_ids=None, **kwargs):  # the model writes " red" and its end marker
        import torch

        return torch.cat([input_ids, written.expand(input_ids.shape[0], -1)], 1)

    monkeypatch.setattr(lmm.hf, "generate", fake_generate)
    assert lmm.generate([context], max_new_tokens=5) == ["red"]
