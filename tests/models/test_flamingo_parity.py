"""Our Flamingo against the reference implementation (open-flamingo==2.0.1 from PyPI, model code loaded by path).

Both are given identical weights: the reference model is built around a copy of our LM and our CLIP tower,
and its state dict, filtered as OpenFlamingo's trainer saves it, is loaded into ours by our checkpoint
mapping. Logits must agree to 1e-5 in fp32, and greedy decoding must produce the same tokens.
"""

from __future__ import annotations

import pytest
import torch
from flamingo_fixtures import tiny_config
from openflamingo_reference import build_reference, reference_checkpoint
from transformers import AutoModelForCausalLM

from symdpo.models.flamingo.build import build_flamingo
from symdpo.models.flamingo.checkpoints import load_openflamingo_checkpoint


def build_pair(lm_type: str, every: int, tmp_path):
    ours = build_flamingo(tiny_config(lm_type, every))
    model = ours.model.eval()
    ref_lm = AutoModelForCausalLM.from_config(model.lm.config)
    ref_lm.load_state_dict(model.lm.state_dict())  # our LM keeps its own parameter names
    ref = build_reference(
        ref_lm, model.vision, media_token_id=model.media_token_id, eoc_token_id=model.eoc_token_id,
        decoder_layers_attr_name=model.decoder_layers_path, every=every,
    ).eval()
    torch.save(reference_checkpoint(ref), tmp_path / "checkpoint.pt")
    load_openflamingo_checkpoint(model, tmp_path / "checkpoint.pt")
    return ours, ref


def make_batch(ours, texts, n_images, padding_side):
    tok = ours.tokenizer
    tok.padding_side = padding_side
    enc = tok(texts, return_tensors="pt", padding=True)
    size = ours.model.vision.config.image_size
    vision_x = torch.randn(len(texts), n_images, 1, 3, size, size)
    return enc.input_ids, enc.attention_mask, vision_x


# several images per row, text before the first image, rows of different lengths (so padding)
TEXTS = [
    "An intro<image>Question: what color? Short answer: red<|endofchunk|><image>Question: size? Short answer:"
    " big<|endofchunk|><image>Question: shape? Short answer:",
    "<image>Output: a cat<|endofchunk|><image>Output: a dog on a table<|endofchunk|><image>Output:",
]


def our_logits(ours, input_ids, attention_mask, vision_x):
    model = ours.model
    b, t = vision_x.shape[:2]
    feats = model.encode_images(vision_x.flatten(0, 2))
    media = model.resample(feats, [t] * b)
    num_images = (input_ids == model.media_token_id).sum(1)
    return model(input_ids, attention_mask, media=media, num_images=num_images).logits


@pytest.mark.parametrize("lm_type,every,padding_side", [("llama", 1, "right"), ("mpt", 1, "left"), ("gpt_neox", 2, "right")])
def test_logits_match_reference(lm_type, every, padding_side, tmp_path):
    # Llama/GPT-NeoX: the reference lets transformers number positions from 0 including left padding, so
    # compare them on right padding; MPT uses ALiBi, where left padding is position-free in both.
    ours, ref = build_pair(lm_type, every, tmp_path)
    input_ids, mask, vision_x = make_batch(ours, TEXTS, 3, padding_side)
    with torch.no_grad():
        expected = ref(vision_x, input_ids, attention_mask=mask).logits
        got = our_logits(ours, input_ids, mask, vision_x)
    real = mask.bool()
    diff = (expected - got).abs()[real].max().item()
    assert diff < 1e-5, diff
    # the cross-attention really contributes (non-zero gates): a different image changes the logits
    with torch.no_grad():
        other = our_logits(ours, input_ids, mask, torch.randn_like(vision_x))
    assert (other - got).abs()[real].max() > 1e-3


def reference_greedy(ref, vision_x, input_ids, mask, steps, eoc):
    """Uncached greedy decoding with the reference forward (its generate() does not run on transformers 5)."""
    ids, m = input_ids, mask
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    out = []
    for _ in range(steps):
        with torch.no_grad():
            nxt = ref(vision_x, ids, attention_mask=m).logits[:, -1].argmax(-1)
        out.append(nxt)
        done |= nxt == eoc
        ids = torch.cat([ids, nxt[:, None]], 1)
        m = torch.cat([m, torch.ones_like(nxt[:, None])], 1)
        if done.all():
            break
    return torch.stack(out, 1)


def test_greedy_tokens_match_reference(tmp_path):
    ours, ref = build_pair("mpt", 1, tmp_path)  # ALiBi: left padding needs no position ids in the reference
    texts = ["<image>Question: what? Short answer: red<|endofchunk|><image>Question: what?", "x<image>Output: a<|endofchunk|><image>Output:"]
    input_ids, mask, vision_x = make_batch(ours, texts, 2, "left")
    expected = reference_greedy(ref, vision_x, input_ids, mask, 8, ours.model.eoc_token_id)
    model = ours.model
    feats = model.encode_images(vision_x.flatten(0, 2))
    media = model.resample(feats, [2, 2])
    got = model.generate(input_ids, mask, media, torch.tensor([2, 2]), max_new_tokens=8, pad_token_id=ours.tokenizer.pad_token_id)
    for row in range(2):
        exp = expected[row].tolist()
        if ours.model.eoc_token_id in exp:
            exp = exp[: exp.index(ours.model.eoc_token_id) + 1]
        assert got[row, : len(exp)].tolist() == exp
