"""Answer scoring of the HF adapter equals the model's own forward, and counts answer tokens only."""

from __future__ import annotations

import pytest
import torch
from hf_fixtures import FAMILY_PRESETS, VARIANT_PRESETS, load, picture, vqa_context


def direct_inputs(lmm, context: list, answer: str) -> dict:
    """Return the processor's own inputs for context + answer written as one prompt (no adapter code)."""
    proc, fam = lmm.processor, lmm.spec
    items = [it.replace("<|endofchunk|>", lmm.end_of_chunk) if isinstance(it, str) else it for it in context]
    items[-1] = items[-1] + answer
    images = [it for it in items if not isinstance(it, str)]
    if fam.name == "idefics":
        return proc(text=[items], add_end_of_utterance_token=False, return_tensors="pt")
    text = "".join(it if isinstance(it, str) else fam.placeholder for it in items)
    imgs = [images] if fam.name in ("idefics3", "llava_onevision") else images  # images grouped per prompt
    return proc(text=[text], images=imgs, return_tensors="pt")


@pytest.mark.parametrize("name", FAMILY_PRESETS + VARIANT_PRESETS)
def test_score_equals_direct_forward(name):
    lmm = load(name)
    context, answer = vqa_context(shots=2), "circle" + lmm.end_of_chunk
    inputs = direct_inputs(lmm, context, answer)
    ours = lmm.tokenize([context], [answer])
    assert ours.input_ids[0].tolist() == inputs["input_ids"][0].tolist()  # the same processed tokens
    n = len(lmm.tokenizer(answer, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logits = lmm.hf(**inputs).logits[0]
    ids = inputs["input_ids"][0]
    expected = torch.log_softmax(logits[-n - 1:-1].float(), -1).gather(-1, ids[-n:, None]).sum()
    logps, counts = lmm.answer_logps([context], [answer])
    assert counts.tolist() == [n]
    assert torch.allclose(logps[0], expected, atol=1e-5)


def test_only_answer_positions_count(lmm, monkeypatch):
    """Scrambling every logit that does not predict an answer token (prompt, image tokens, padding) changes nothing."""
    contexts = [vqa_context(shots=2), ["Question:Is it? Short answer:"], vqa_context(seed=7, shots=1)]
    answers = ["circle" + lmm.end_of_chunk, "yes", "two red" + lmm.end_of_chunk]
    before = lmm.score(contexts, answers)
    batch = lmm.tokenize(contexts, answers)
    predicts_answer = torch.zeros_like(batch.answer_mask)
    predicts_answer[:, :-1] = batch.answer_mask[:, 1:]
    forward = lmm.hf.forward

    def scrambled(*args, **kwargs):
        out = forward(*args, **kwargs)
        noise = torch.randn_like(out.logits) * 100
        kept = predicts_answer[:, -out.logits.shape[1]:]  # scoring may ask for the answer columns only
        out.logits = torch.where(kept[..., None], out.logits, noise)
        return out

    monkeypatch.setattr(lmm.hf, "forward", scrambled)
    assert torch.allclose(lmm.score(contexts, answers), before, atol=1e-5)


def test_padding_does_not_change_scores(lmm):
    contexts = [["Question:Is it? Short answer:"], vqa_context(shots=3), [picture(3), "Output:"]]
    answers = ["yes" + lmm.end_of_chunk, "circle", "a cat"]
    batched = lmm.score(contexts, answers)
    alone = torch.stack([lmm.score([c], [a])[0] for c, a in zip(contexts, answers, strict=True)])
    assert torch.allclose(batched, alone, atol=1e-4)


def test_image_changes_the_score(lmm):
    """The images do reach the model (else the masking tests above would prove little)."""
    a = lmm.score([vqa_context(seed=1)], ["circle"])
    b = lmm.score([vqa_context(seed=1)[:-2] + [picture(55), "Question:What shape? Short answer:"]], ["circle"])
    assert (a - b).abs().item() > 1e-6  # tiny random towers: small, but a real difference


def test_pair_logps_and_gradients(lmm):
    contexts = [vqa_context(shots=1), vqa_context(seed=4, shots=2)]
    chosen, rejected = ["circle", "rhondda"], ["red", "odwyer" + lmm.end_of_chunk]
    c, r, nc, nr = lmm.pair_logps(contexts, chosen, rejected)
    assert torch.allclose(c, lmm.score(contexts, chosen), atol=1e-5)
    assert torch.allclose(r, lmm.score(contexts, rejected), atol=1e-5)
    assert nr.tolist() == [len(lmm.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in rejected]
    (c.sum() - r.sum()).backward()
    grads = [p.grad for p in lmm.module.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    lmm.module.zero_grad(set_to_none=True)


def test_tensor_images_accepted(lmm):
    img = picture(9)
    tensor = torch.from_numpy(__import__("numpy").array(img)).permute(2, 0, 1).float() / 255
    ctx = lambda im: [im, "Question:What shape? Short answer:"]  # noqa: E731
    assert torch.allclose(lmm.score([ctx(img)], ["circle"]), lmm.score([ctx(tensor)], ["circle"]), atol=1e-5)
    with pytest.raises(TypeError, match="precomputed vision features"):
        lmm.score([ctx(torch.zeros(4, 8))], ["circle"])
