"""Exact masking of answer log-probs, and shared-prefix == naive scoring (values and gradients, fp32).

Compared against: a hand computation of log-softmax at the answer positions of the full-sequence logits,
and FlamingoLMM's naive path (each answer on its own copy of the context). Log-probs are compared relatively
(float32 rounding grows with them), with an absolute floor a tenth of that for values near 0.
"""

from __future__ import annotations

import pytest
import torch
from pair_fixtures import EOC, ctx, mpt_lmm, pair_grads

from symdpo.models.scoring import sequence_logps


def test_answer_mask_is_exactly_the_answer(lmm, images):
    """Only the answer's own tokens (ending with <|endofchunk|>) are scored, as a hand computation confirms."""
    contexts, answers = [ctx(images, shots=1), ctx(images, shots=3)], ["circle" + EOC, "zorblat" + EOC]
    batch = lmm.tokenize(contexts, answers)
    eoc = lmm.tokenizer.convert_tokens_to_ids(EOC)
    with torch.no_grad():
        logps, counts = lmm.answer_logps(contexts, answers)
        logits = lmm.model(batch.input_ids, batch.attention_mask, media=lmm.media(batch),
                           num_images=batch.num_images).logits
    for row, answer in enumerate(answers):
        ids = lmm.tokenizer(answer, add_special_tokens=False)["input_ids"]
        positions = batch.answer_mask[row].nonzero().flatten().tolist()
        assert positions == list(range(batch.input_ids.shape[1] - len(ids), batch.input_ids.shape[1]))
        assert batch.input_ids[row, positions].tolist() == ids and ids[-1] == eoc
        assert counts[row] == len(ids)
        by_hand = sum(torch.log_softmax(logits[row, t - 1], -1)[batch.input_ids[row, t]] for t in positions)
        torch.testing.assert_close(logps[row], by_hand, rtol=1e-5, atol=1e-6)


def test_padding_changes_no_logprob(lmm, images):
    """More left padding, or another token in the padded slots, leaves every answer log-prob unchanged."""
    short, long = ctx(images, shots=1), ctx(images, shots=5)
    alone, _ = lmm.score([short], ["circle" + EOC]), None
    padded = lmm.score([short, long], ["circle" + EOC, "red" + EOC])[0]
    torch.testing.assert_close(alone[0], padded, rtol=1e-5, atol=1e-6)
    batch = lmm.tokenize([short, long], ["circle" + EOC, "red" + EOC])
    assert (batch.attention_mask[0] == 0).sum() > 10
    media = lmm.media(batch)
    with torch.no_grad():
        ref = lmm.model(batch.input_ids, batch.attention_mask, media=media, num_images=batch.num_images).logits
        other = batch.input_ids.masked_fill(batch.attention_mask == 0, lmm.tokenizer.convert_tokens_to_ids("a"))
        got = lmm.model(other, batch.attention_mask, media=media, num_images=batch.num_images).logits
    a = sequence_logps(ref, batch.input_ids, batch.answer_mask)[0]
    b = sequence_logps(got, other, batch.answer_mask)[0]
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_prompt_and_prefix_tokens_are_not_counted(lmm, images):
    """With the logits held fixed, relabelling any prompt token (incl. `Short answer:`) or pad changes nothing;
    relabelling one answer token does. So the sum is over answer tokens only (the reference counts pads)."""
    batch = lmm.tokenize([ctx(images, shots=1), ctx(images, shots=2)], ["circle" + EOC, "zorblat" + EOC])
    logits = torch.randn(*batch.input_ids.shape, len(lmm.tokenizer))
    base, _ = sequence_logps(logits, batch.input_ids, batch.answer_mask)
    prefix_ids = lmm.tokenizer(" Short answer:", add_special_tokens=False)["input_ids"]
    not_answer = ~batch.answer_mask
    relabelled = batch.input_ids.clone()
    relabelled[not_answer] = (relabelled[not_answer] + 7) % len(lmm.tokenizer)  # prompt, prefix and pads
    assert torch.equal(sequence_logps(logits, relabelled, batch.answer_mask)[0], base)
    # the `Short answer:` tokens sit right before the answer and are outside the mask
    first = batch.answer_mask[0].nonzero()[0].item()
    assert not batch.answer_mask[0, first - len(prefix_ids):first].any()
    changed = batch.input_ids.clone()
    changed[0, first] = (changed[0, first] + 1) % len(lmm.tokenizer)
    new = sequence_logps(logits, changed, batch.answer_mask)[0]
    assert new[0] != base[0] and new[1] == base[1]


def test_changing_an_answer_token_changes_its_logprob(lmm, images):
    c = ctx(images, shots=2)
    a, b = lmm.score([c, c], ["circle" + EOC, "circles" + EOC])
    assert abs(float(a - b)) > 1e-4


def _grads(lmm, shared: bool, contexts, chosen, rejected):
    params = [p for p in lmm.model.parameters() if p.requires_grad]
    return pair_grads(lmm, params, contexts, chosen, rejected, shared_prefix=shared)


@pytest.mark.parametrize(("family", "checkpointing", "answers"), [
    ("llama", False, ("red", "zorblat")), ("llama", False, ("a b c d", "x")), ("llama", True, ("a b c d", "x")),
    ("mpt", False, ("a b c d", "x")), ("mpt", True, ("red", "zorblat")),
])
def test_shared_prefix_equals_naive(lmm, images, family, checkpointing, answers):
    """Values and gradients of the shared-prefix rows equal the naive concatenation to 1e-5 (fp32): for a
    rotary LM (Llama) and an ALiBi one (MPT, whose distances must follow positions, not columns), with and
    without gradient checkpointing."""
    from symdpo.models.flamingo.training import set_openflamingo_trainable

    model = lmm if family == "llama" else mpt_lmm()
    set_openflamingo_trainable(model.model)
    model.model.train()
    if checkpointing:
        model.model.gradient_checkpointing_enable()
    contexts = [ctx(images, shots=1), ctx(images, shots=4), ctx(images, shots=2, q="is it blue?")]
    chosen = [answers[0] + EOC, "circle" + EOC, answers[1] + EOC]
    rejected = [answers[1] + EOC, "blue" + EOC, "no" + EOC]
    try:
        torch.manual_seed(0)
        shared, g_shared = _grads(model, True, contexts, chosen, rejected)
        naive, g_naive = _grads(model, False, contexts, chosen, rejected)
    finally:
        model.model.lm.gradient_checkpointing_disable()
        model.model.gradient_checkpointing = False
    for s, n in zip(shared, naive, strict=True):
        torch.testing.assert_close(s, n, rtol=1e-5, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in g_shared)
    for gs, gn in zip(g_shared, g_naive, strict=True):
        torch.testing.assert_close(gs, gn, atol=1e-5, rtol=1e-5)


def test_logits_are_computed_at_answer_columns_only(lmm, images, monkeypatch):
    """Training's scoring asks the LM for the logits of the answer-predicting columns, not the whole row's."""
    contexts, answers = [ctx(images, shots=1), ctx(images, shots=3)], ["circle" + EOC, "zorblat" + EOC]
    widths = []
    forward = lmm.model.lm.forward

    def recording(*args, **kwargs):
        out = forward(*args, **kwargs)
        widths.append(out.logits.shape[1])
        return out

    monkeypatch.setattr(lmm.model.lm, "forward", recording)
    lmm.answer_logps(contexts, answers)
    lmm.pair_logps(contexts, answers, ["red" + EOC, "x" + EOC])
    longest = max(lmm.answer_token_counts(answers))
    full = lmm.tokenize(contexts, answers).input_ids.shape[1]
    assert widths[0] == longest + 1 < full // 4
    assert widths[1] == 1 + longest + max(lmm.answer_token_counts(["red" + EOC, "x" + EOC]))
