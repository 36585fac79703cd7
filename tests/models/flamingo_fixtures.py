"""Tiny Flamingo configs built offline: random LM and CLIP weights, a tokenizer trained on the fly."""

from __future__ import annotations

TINY_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=28, patch_size=14)
TINY_LMS = {
    "llama": dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, vocab_size=512),
    "mpt": dict(model_type="mpt", d_model=32, n_heads=4, n_layers=3, max_seq_len=256, vocab_size=512),
    "gpt_neox": dict(model_type="gpt_neox", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                     num_attention_heads=4, max_position_embeddings=256, vocab_size=512),
}


def tiny_config(lm: str = "llama", every: int = 1, **overrides):
    """Return a FlamingoConfig for a tiny random model (OpenFlamingo's perceiver/xattn sizes unless overridden)."""
    from symdpo.models.flamingo.build import FlamingoConfig

    return FlamingoConfig(lm=TINY_LMS[lm], tokenizer="tiny", vision=TINY_CLIP, cross_attn_every_n_layers=every, **overrides)
