"""Trainable policies, the recipe-facing views, presets, and save/load of HF models."""

from __future__ import annotations

import logging

import pytest
import torch
from hf_fixtures import vqa_context

from symdpo.models.hf.policies import apply_policy
from symdpo.models.presets import load_model


def trainable_names(lmm) -> list[str]:
    return [n for n, p in lmm.model.named_parameters() if p.requires_grad]


@pytest.mark.parametrize("name", ["tiny-idefics", "tiny-qwen2-vl"])
def test_policies(name):
    lmm = load_model(name)
    vision = {id(p) for p in lmm.model.vision.parameters()}
    full = apply_policy(lmm, "full")
    assert full and not any(id(p) in vision for p in full)
    conn = apply_policy(lmm, "connector")
    expected = {id(p) for p in lmm.model.perceiver.parameters()} | {id(p) for p in lmm.model.xattn.parameters()}
    assert {id(p) for p in conn} == expected
    if name == "tiny-idefics":
        assert any("gated_cross_attn" in n for n in trainable_names(lmm))
    lora = apply_policy(lmm, "lora")
    assert lora and all("lora_" in n for n in trainable_names(lmm))
    assert all(".layers." in n or "text_model" in n or "language_model" in n for n in trainable_names(lmm))
    assert lmm.family.default_policy == ("connector" if name == "tiny-idefics" else "lora")
    with pytest.raises(ValueError, match="unknown trainable policy"):
        apply_policy(lmm, "everything")


def test_recipe_views_and_token_rows():
    """The Flamingo recipe's trainable set and embedding-row mask work on the views the HF module offers."""
    from symdpo.models.flamingo.build import new_token_rows, set_openflamingo_trainable

    lmm = load_model("tiny-idefics3")
    set_openflamingo_trainable(lmm.model, train_embeddings=True)
    names = trainable_names(lmm)
    assert any("connector" in n for n in names) and any("embed_tokens" in n for n in names)
    tok = lmm.processor.tokenizer
    assert new_token_rows(lmm.tokenizer) == [tok.convert_tokens_to_ids(lmm.end_of_chunk), tok.convert_tokens_to_ids("<image>")]
    ids = lmm.tokenizer("red" + lmm.end_of_chunk, add_special_tokens=False)["input_ids"]
    assert ids[-1] == tok.convert_tokens_to_ids(lmm.end_of_chunk)  # the marker is one token, as scored


def test_save_load_roundtrip(tmp_path):
    lmm = load_model("tiny-qwen2-vl")
    ctx, ans = [vqa_context(shots=1)], ["circle" + lmm.end_of_chunk]
    apply_policy(lmm, "connector")
    with torch.no_grad():
        next(lmm.model.perceiver.parameters()).add_(0.5)
    changed = lmm.score(ctx, ans)
    lmm.save_pretrained(tmp_path / "part", trainable_only=True)
    lmm.save_pretrained(tmp_path / "full")
    for sub in ("part", "full"):
        back = load_model(tmp_path / sub)
        assert type(back).__name__ == "HFInterleavedLMM" and back.end_of_chunk == lmm.end_of_chunk
        assert torch.allclose(back.score(ctx, ans), changed, atol=1e-5)
    assert not torch.allclose(load_model("tiny-qwen2-vl").score(ctx, ans), changed)


def test_remote_code_off_by_default_and_warns(caplog, monkeypatch):
    from symdpo.models.hf.presets import trust_remote_code_allowed

    monkeypatch.delenv("SYMDPO_TRUST_REMOTE_CODE", raising=False)
    with caplog.at_level(logging.WARNING, logger="symdpo.models.hf"):
        assert trust_remote_code_allowed(None) is False
        assert not caplog.records
        assert trust_remote_code_allowed(True) is True
        monkeypatch.setenv("SYMDPO_TRUST_REMOTE_CODE", "1")
        assert trust_remote_code_allowed(None) is True
    assert sum("trust_remote_code" in r.message for r in caplog.records) == 2


@pytest.mark.parametrize("kind,fields", [("vqa", {"question": "What shape?", "answer": "circle"}),
                                         ("caption", {"caption": "a red circle"})])
def test_family_prompt_templates_render_scorable_contexts(kind, fields):
    from hf_fixtures import picture

    from symdpo.eval.prompts import PromptItem, render_context, to_interleaved
    from symdpo.models.hf.presets import HF_PRESETS, PROMPTS, prompt_template

    assert {p.prompts for p in HF_PRESETS.values()} <= set(PROMPTS)
    for name in ("tiny-idefics", "tiny-qwen2-vl"):
        lmm = load_model(name)
        template = prompt_template(lmm, kind)
        query = {k: v for k, v in fields.items() if k not in ("answer", "caption")}
        text, images = render_context(template, [PromptItem(picture(1), fields)], PromptItem(picture(2), query))
        context = to_interleaved(text, images, template.image_marker)
        assert lmm.tokenize([context]).input_ids.shape[1] > 0
        assert torch.isfinite(lmm.score([context], [fields.get("answer", "a cat")]))


def test_unknown_name_lists_hf_presets():
    from symdpo.models.presets import UnknownModelError

    with pytest.raises(UnknownModelError, match="tiny-qwen2-vl"):
        load_model("no-such-model")
