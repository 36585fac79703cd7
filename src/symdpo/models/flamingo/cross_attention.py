"""Gated cross-attention dense block: text tokens attend to the visual tokens of their latest image.

Inserted before a decoder layer of the language model. The tanh gates start at zero so that a fresh
Flamingo computes exactly what the bare language model computes (Alayrac et al. 2022, §2.2: "this ensures
that at initialization, the conditioned model yields the same results as the original language model").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from symdpo.models.flamingo.perceiver import feed_forward


class MaskedCrossAttention(nn.Module):
    """Each text token attends to the latents of one image: the latest ``<image>`` at or before it."""

    def __init__(self, *, dim: int, dim_visual: int, dim_head: int = 64, heads: int = 8):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_visual, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def media_kv(self, media: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return keys and values (B, h, T_img * n, dh) of the visual tokens ``media`` (B, T_img, n, Dv)."""
        k, v = self.to_kv(media.flatten(1, 2)).chunk(2, dim=-1)
        return tuple(t.unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2) for t in (k, v))

    def forward(
        self,
        x: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor],
        text_time: torch.Tensor,
        latents_per_image: int,
    ) -> torch.Tensor:
        """Return the (B, T, D) update for text ``x`` (B, T, D); ``text_time`` (B, T) is the 1-based image index
        each token attends to, 0 for text before any image."""
        k, v = kv
        q = self.to_q(self.norm(x)).unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2)  # (B, h, T, dh)
        n_media = k.shape[2] // latents_per_image
        media_time = torch.arange(1, n_media + 1, device=x.device).repeat_interleave(latents_per_image)
        has_media = text_time > 0  # (B, T)
        # Text with no preceding image attends nowhere; give it a harmless full row, then zero its output
        # (OpenFlamingo zeroes those attention rows), since an all-masked row would make SDPA return NaN.
        allowed = (text_time[:, :, None] == media_time[None, None, :]) | ~has_media[:, :, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])  # (B, h, T, dh)
        out = out.transpose(1, 2).flatten(2) * has_media[..., None].to(out.dtype)
        return self.to_out(out)


class GatedCrossAttentionBlock(nn.Module):
    """x + tanh(attn_gate) * xattn(x) followed by x + tanh(ff_gate) * ff(x).

    ``media_kv`` uses the block's weights outside ``forward``: the model names it in its ``sharded_methods``.
    """

    def __init__(self, *, dim: int, dim_visual: int, dim_head: int = 64, heads: int = 8, ff_mult: int = 4):
        super().__init__()
        self.attn = MaskedCrossAttention(dim=dim, dim_visual=dim_visual, dim_head=dim_head, heads=heads)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = feed_forward(dim, ff_mult)
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def media_kv(self, media: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the cross-attention's keys and values of the visual tokens ``media`` (B, T_img, n, Dv)."""
        return self.attn.media_kv(media)

    def forward(
        self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], text_time: torch.Tensor, latents_per_image: int
    ) -> torch.Tensor:
        """Return the gated update of text hidden states ``x`` (B, T, D)."""
        x = self.attn(x, kv, text_time, latents_per_image) * self.attn_gate.tanh() + x
        return self.ff(x) * self.ff_gate.tanh() + x
