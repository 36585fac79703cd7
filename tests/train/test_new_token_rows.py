"""Training the new tokens' rows as their own parameter equals OpenFlamingo's gradient-masked whole matrix.

Compared against: `mask_embedding_grads`, OpenFlamingo's way (whole input-embedding matrix trainable, gradient
zeroed outside the rows of <image>, <|endofchunk|>, <PAD>), run on an identical copy of the model.
"""

from __future__ import annotations

import pytest
import torch

from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo
from symdpo.models.flamingo.presets import TINY_CLIP, TINY_LLAMA, TINY_XATTN
from symdpo.models.flamingo.training import (
    mask_embedding_grads,
    new_token_rows,
    param_groups,
    release_new_token_rows,
    set_openflamingo_trainable,
    train_new_token_rows,
)

EOC = "<|endofchunk|>"
LMS = {
    "llama-untied": TINY_LLAMA,
    "mpt-tied": dict(model_type="mpt", d_model=64, n_heads=4, n_layers=2, max_seq_len=512, vocab_size=512, no_bias=True),
}


def _model(lm: dict):
    m = build_flamingo(FlamingoConfig(lm=lm, tokenizer="tiny", vision=TINY_CLIP, seed=3, **TINY_XATTN))
    with torch.no_grad():
        for name, p in m.model.named_parameters():
            if name.endswith(("attn_gate", "ff_gate")):
                p.fill_(0.5)
    set_openflamingo_trainable(m.model, train_embeddings=True)
    return m


def _train(m, images, steps: int = 3):
    # eps well above fp32 rounding of the gradients: with 1e-8, AdamW turns 1e-9-sized rounding differences
    # of near-zero gradient entries into full-size updates (the gradients agree to 1e-7, see the test below)
    opt = torch.optim.AdamW([g.as_optimizer_group() for g in param_groups(m.model, 0.1)], lr=1e-2, eps=1e-4)
    trainable = [p for p in m.model.parameters() if p.requires_grad]
    contexts = [[images[0], f"Question:what shape? Short answer:blarf{EOC}", images[1], "Question:what shape? Short answer:"],
                [images[2], "Question:what colour? Short answer:"]]
    for _ in range(steps):
        c, r, _, _ = m.pair_logps(contexts, ["blarf" + EOC, "red" + EOC], ["circle" + EOC, EOC], shared_prefix=True)
        (-(c.sum() * 0.7 - r.sum() * 1.3)).backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("family", sorted(LMS))
def test_rows_train_exactly_like_the_gradient_mask(images, family):
    masked, rows = _model(LMS[family]), _model(LMS[family])
    before = rows.model.lm.get_input_embeddings().weight.detach().clone()
    mask_embedding_grads(masked.model, masked.tokenizer)
    new = train_new_token_rows(rows.model, rows.tokenizer)
    assert new is not None and not rows.model.lm.get_input_embeddings().weight.requires_grad
    tied = rows.model.lm.get_output_embeddings().weight is rows.model.lm.get_input_embeddings().weight
    assert tied == (family == "mpt-tied")
    _train(masked, images)
    _train(rows, images)
    ids = new_token_rows(rows.tokenizer)
    weight = rows.model.lm.get_input_embeddings().weight
    assert torch.equal(weight, before)  # the frozen matrix itself is never touched during training
    new.merge()
    expected = masked.model.lm.get_input_embeddings().weight.detach()
    assert not torch.equal(expected[ids], before[ids])  # the rows did train
    torch.testing.assert_close(weight, expected, atol=1e-6, rtol=1e-5)
    others = dict(masked.model.named_parameters())
    for name, p in rows.model.named_parameters():
        if name.startswith(("xattn.", "perceiver.")):
            torch.testing.assert_close(p, others[name], atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("family", sorted(LMS))
def test_gradients_equal_the_masked_ones(images, family):
    masked, rows = _model(LMS[family]), _model(LMS[family])
    mask_embedding_grads(masked.model, masked.tokenizer)
    new = train_new_token_rows(rows.model, rows.tokenizer)
    contexts = [[images[0], f"Question:what shape? Short answer:blarf{EOC}", images[1], "Question:what shape? Short answer:"]]
    for m in (masked, rows):
        c, r, _, _ = m.pair_logps(contexts, ["blarf" + EOC], ["circle" + EOC])
        (-(c.sum() * 0.7 - r.sum() * 1.3)).backward()
    reference = dict(masked.model.named_parameters())
    embedding = masked.model.lm.get_input_embeddings().weight
    torch.testing.assert_close(new.rows.grad, embedding.grad[new_token_rows(rows.tokenizer)], atol=1e-6, rtol=1e-5)
    for name, p in rows.model.named_parameters():
        if p.requires_grad and name in reference:
            torch.testing.assert_close(p.grad, reference[name].grad, atol=1e-6, rtol=1e-5, msg=name)


def test_saved_model_holds_the_trained_rows(images, tmp_path):
    from symdpo.models.registry import load_model

    m = _model(LMS["mpt-tied"])
    m.source = "test"
    train_new_token_rows(m.model, m.tokenizer)
    _train(m, images, steps=2)
    contexts, answers = [[images[3], "Question:what shape? Short answer:"]], ["blarf" + EOC]
    expected = m.score(contexts, answers)
    m.save_pretrained(tmp_path / "full")
    loaded = load_model(str(tmp_path / "full"))
    assert not any(n.startswith("new_rows.") for n, _ in loaded.model.named_parameters())
    torch.testing.assert_close(loaded.score(contexts, answers), expected, rtol=1e-5, atol=1e-6)
    release_new_token_rows(m.model)  # what the recipes do before their final save
    assert not hasattr(m.model, "new_rows") and m.model.lm.get_input_embeddings().weight.requires_grad
    torch.testing.assert_close(m.score(contexts, answers), expected, rtol=1e-6, atol=1e-7)
