"""Presets, prompt formats and save/load of HF models (policies: tests/models/test_seam.py)."""

from __future__ import annotations

import logging

import pytest
import torch
from hf_fixtures import vqa_context

from symdpo.models.interface import TrainingSpec
from symdpo.models.registry import load_model


def trainable_names(lmm) -> list[str]:
    return [n for n, p in lmm.module.named_parameters() if p.requires_grad]


def test_save_load_roundtrip(tmp_path):
    lmm = load_model("tiny-qwen2-vl")
    ctx, ans = [vqa_context(shots=1)], ["circle" + lmm.end_of_chunk]
    lmm.prepare_training(TrainingSpec(policy="connector"))
    with torch.no_grad():
        next(lmm.hf.model.visual.merger.parameters()).add_(0.5)
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

    from symdpo.eval.prompts import PromptItem, render_context
    from symdpo.models.hf.families import FAMILIES
    from symdpo.models.hf.presets import HF_PRESETS
    from symdpo.models.prompts import to_interleaved

    assert all(p.prompts in FAMILIES[p.family].prompts for p in HF_PRESETS.values())
    for name in ("tiny-idefics", "tiny-qwen2-vl"):
        lmm = load_model(name)
        template = lmm.prompt_format(kind, "native")
        query = {k: v for k, v in fields.items() if k not in ("answer", "caption")}
        text, images = render_context(template, [PromptItem(picture(1), fields)], PromptItem(picture(2), query))
        context = to_interleaved(text, images, template.image_marker)
        assert lmm.tokenize([context]).input_ids.shape[1] > 0
        assert torch.isfinite(lmm.score([context], [fields.get("answer", "a cat")]))


def test_unknown_name_lists_hf_presets():
    from symdpo.models.errors import UnknownModelError

    with pytest.raises(UnknownModelError, match="tiny-qwen2-vl"):
        load_model("no-such-model")


def test_idefics_default_policy_is_the_papers():
    """IDEFICS v1 (a Flamingo) trains by default what the SymDPO paper trains: the perceiver, the gated
    cross-attention and the added tokens' rows, as train/config.py and hf/training.py say (openflamingo).
    The model has added tokens, as the release has (its <fake_token_around_image> and <image> rows)."""
    import transformers

    from symdpo.models.hf.adapter import HFInterleavedLMM
    from symdpo.models.hf.families import FAMILIES

    built = FAMILIES["idefics"].tiny(None)
    built.config.additional_vocab_size = 2
    lmm = HFInterleavedLMM(transformers.IdeficsForVisionText2Text(built.config).eval(), built.processor,
                           family=FAMILIES["idefics"])
    assert lmm.info().default_policy == "openflamingo"
    lmm.prepare_training(TrainingSpec())
    names = trainable_names(lmm)
    assert any(n.startswith("model.perceiver_resampler.") for n in names)
    assert any(n.startswith("model.gated_cross_attn_layers.") for n in names)
    assert not any(n.startswith(("model.layers.", "model.vision_model.")) for n in names)
    assert any("additional_embedding" in n for n in names) and any("additional_fc" in n for n in names)
