"""MPT self-attention through PyTorch's fused ``scaled_dot_product_attention``, with ALiBi from token positions.

transformers' `MptAttention` is eager-only: every layer materialises the (batch, heads, query, key) scores, upcasts
them to fp32 for the softmax and keeps the fp32 softmax and its low-precision copy for the backward pass — 6 bytes
per score per layer in bf16, the largest activation of OpenFlamingo-3B training. The fused kernels keep none of
them. ALiBi, the causal mask and the padding are folded into one additive bias that every layer of a forward pass
shares (built once, saved for backward once).

ALiBi penalises a key by its distance to the query. transformers measures it in columns; `alibi_positions` lets a
caller give token positions instead, which the shared-prefix scoring needs (both answers continue the context
from the same position, side by side in one row). The bias is formed relative to each query, so the values that
matter (near keys) stay exact in bf16. Same maths as transformers' code otherwise, which the tests compare with.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F
from transformers.models.mpt.modeling_mpt import MptAttention, MptModel


class _SharedBias:
    """Builds the additive attention bias once per forward pass and hands the same tensor to every layer."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._value = lambda: None

    def __call__(self, position_bias: torch.Tensor, mask: torch.Tensor | None, query_length: int, key_length: int,
                 dtype: torch.dtype) -> torch.Tensor:
        """Return the (B|1, heads, query, key) ALiBi bias, masked (True) positions at dtype's minimum."""
        key = (query_length, key_length, dtype)
        if self._key and self._key[0]() is position_bias and self._key[1]() is mask and self._key[2:] == key:
            cached = self._value()
            if cached is not None:
                return cached
        # position_bias: (heads, 1, max_seq_len) from transformers (by column), or (B, heads, 1, T) by position
        per_key = position_bias[..., -key_length:].float()
        if per_key.ndim == 3:
            per_key = per_key[None]
        per_query = per_key[..., key_length - query_length:].transpose(-1, -2)  # each query is also a key
        bias = (per_key - per_query).to(dtype)  # slope * (key position - query position)
        if mask is not None:
            bias = torch.where(mask, torch.finfo(dtype).min, bias)
        # weak references only: nothing outlives the forward pass (and its backward) because of this cache
        self._key = (weakref.ref(position_bias), (weakref.ref(mask) if mask is not None else lambda: None), *key)
        self._value = weakref.ref(bias)
        return bias


class SdpaMptAttention(MptAttention):
    """`MptAttention` computing softmax(QK^T * scale + ALiBi + mask) V with ``F.scaled_dot_product_attention``."""

    _shared_bias: _SharedBias

    def forward(self, hidden_states: torch.Tensor, position_bias: torch.Tensor, cache=None,
                attention_mask: torch.Tensor | None = None, past_key_values=None, **kwargs):
        cache = cache if cache is not None else past_key_values
        batch, length = hidden_states.shape[:2]
        qkv = self.Wqkv(hidden_states)
        if self.clip_qkv:
            qkv = qkv.clamp(min=-self.clip_qkv, max=self.clip_qkv)
        q, k, v = (t.reshape(batch, length, self.n_heads, self.head_dim).transpose(1, 2) for t in qkv.chunk(3, dim=2))
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        bias = self._shared_bias(position_bias, attention_mask, length, k.shape[-2], q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.softmax_scale,
                                             dropout_p=self.attn_dropout_p if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.out_proj(out), None  # no attention weights: a fused kernel never forms them


class PositionalAlibiMptModel(MptModel):
    """`MptModel` whose ALiBi follows token positions while `alibi_positions` says so."""

    _alibi_positions: torch.Tensor | None = None

    def build_mpt_alibi_tensor(self, num_heads, sequence_length, alibi_bias_max=8, device=None):
        by_column = super().build_mpt_alibi_tensor(num_heads, sequence_length, alibi_bias_max, device)
        positions = self._alibi_positions
        if positions is None:
            return by_column
        slopes = (by_column[:, 0, -1] - by_column[:, 0, -2]).float()  # (heads,): columns differ by one slope
        return slopes[None, :, None, None] * positions.to(slopes.device, torch.float32)[:, None, None, :]


def use_sdpa_attention(lm: nn.Module) -> nn.Module:
    """Return the MPT model ``lm`` with fused attention and position-aware ALiBi, in place (same parameters)."""
    shared = _SharedBias()
    for module in lm.modules():
        if type(module) is MptAttention:
            module.__class__ = SdpaMptAttention  # same parameters and names: only forward changes
            module._shared_bias = shared
        elif type(module) is MptModel:
            module.__class__ = PositionalAlibiMptModel
    return lm


@contextmanager
def alibi_positions(lm: nn.Module, positions: torch.Tensor | None) -> Iterator[None]:
    """Within the block, ALiBi of ``lm`` measures distance by ``positions`` (B, T) of an uncached call."""
    model = getattr(lm, "transformer", None)  # MptForCausalLM's body, made positional by `use_sdpa_attention`
    if positions is None or not isinstance(model, PositionalAlibiMptModel):
        yield
        return
    model._alibi_positions = positions
    try:
        yield
    finally:
        model._alibi_positions = None
