"""OpenFlamingo checkpoints: exact key names load strictly; bad files give one clear CLI error."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from flamingo_fixtures import tiny_config
from openflamingo_reference import build_reference, reference_checkpoint
from transformers import AutoModelForCausalLM

from symdpo.models.flamingo.build import build_flamingo
from symdpo.models.flamingo.checkpoints import CheckpointError, load_openflamingo_checkpoint

# transformers MPT name -> MosaicGPT name (the inverse of mpt_convert's table), to write a checkpoint the way
# OpenFlamingo-3B's trainer did, with MosaicGPT parameter names
MPT_TO_MOSAIC = [(".norm_1.", ".ln_1."), (".norm_2.", ".ln_2."), ("transformer.norm_f.", "transformer.ln_f."),
                 (".ffn.up_proj.", ".mlp.mlp_up."), (".ffn.down_proj.", ".mlp.mlp_down.")]


def reference_pair(lm_type="llama"):
    ours = build_flamingo(tiny_config(lm_type))
    ref_lm = AutoModelForCausalLM.from_config(ours.model.lm.config)
    ref_lm.load_state_dict(ours.model.lm.state_dict())
    m = ours.model
    ref = build_reference(ref_lm, m.vision, media_token_id=m.media_token_id, eoc_token_id=m.eoc_token_id,
                          decoder_layers_attr_name=m.decoder_layers_path, every=1)
    return ours, ref


def test_openflamingo_key_names_load_with_nothing_left_over(tmp_path):
    ours, ref = reference_pair()
    sd = reference_checkpoint(ref)
    assert any(".gated_cross_attn_layer." in k for k in sd) and any(k.startswith("perceiver.layers.0.0.") for k in sd)
    torch.save(sd, tmp_path / "checkpoint.pt")
    load_openflamingo_checkpoint(ours.model, tmp_path / "checkpoint.pt")
    got = ours.model.state_dict()
    assert torch.equal(got["xattn.0.attn_gate"], sd["lang_encoder.model.layers.0.gated_cross_attn_layer.attn_gate"])
    assert torch.equal(got["perceiver.layers.1.ff.3.weight"], sd["perceiver.layers.1.1.3.weight"])
    assert torch.equal(got["lm.model.embed_tokens.weight"], sd["lang_encoder.model.embed_tokens.weight"])


def test_full_mosaicgpt_checkpoint_with_trainer_wrapping(tmp_path):
    ours, ref = reference_pair("mpt")
    sd = {}
    for k, v in ref.state_dict().items():  # everything, under every alias, MosaicGPT names, DDP "module." prefix
        if k.startswith("vision_encoder") or k.endswith("lm_head.weight"):  # MosaicGPT ties to wte, has no lm_head
            continue
        for a, b in MPT_TO_MOSAIC:
            k = k.replace(a, b)
        sd[f"module.{k}"] = v
    torch.save({"model_state_dict": sd}, tmp_path / "checkpoint.pt")
    kept = load_openflamingo_checkpoint(ours.model, tmp_path / "checkpoint.pt", lm_format="mosaicgpt")
    assert kept == []  # every LM weight came from the checkpoint
    ref_sd = ref.lang_encoder.state_dict()
    got = ours.model.state_dict()
    assert torch.equal(got["lm.transformer.blocks.1.norm_2.weight"], ref_sd["transformer.blocks.1.decoder_layer.norm_2.weight"])


@pytest.mark.parametrize("corrupt", ["extra", "missing", "shape"])
def test_strict_mapping_names_the_bad_keys(tmp_path, corrupt):
    ours, ref = reference_pair()
    sd = reference_checkpoint(ref)
    if corrupt == "extra":
        sd["lang_encoder.model.layers.0.gated_cross_attn_layer.attn.bogus.weight"] = torch.zeros(1)
    elif corrupt == "missing":
        del sd["perceiver.latents"]
    else:
        sd["perceiver.latents"] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError) as e:
        load_openflamingo_checkpoint(ours.model, tmp_path / "checkpoint.pt")
    assert {"extra": "bogus", "missing": "perceiver.latents", "shape": "perceiver.latents"}[corrupt] in str(e.value)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "symdpo", *args], capture_output=True, text=True, timeout=300)


def test_cli_errors_are_one_clear_line(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 10)
    ours, ref = reference_pair()  # OpenFlamingo-sized cross-attention: another architecture than the tiny preset
    torch.save(reference_checkpoint(ref), tmp_path / "other.pt")
    cases = {
        "missing.pt": "no such checkpoint file",
        "garbage.pt": "not a readable PyTorch checkpoint",
        "other.pt": "does not fit this model",
    }
    for name, message in cases.items():
        r = run_cli("model", "convert", str(tmp_path / name), "--out", str(tmp_path / "out"), "--preset", "tiny")
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr and message in r.stderr
        assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: ")
    assert not (tmp_path / "out").exists()
    r = run_cli("model", "info", "no-such-preset")
    assert r.returncode == 1 and "unknown model" in r.stderr and "Traceback" not in r.stderr
