"""Perceiver resampler: maps each image's patch features to a fixed set of latent tokens.

Follows OpenFlamingo (open_flamingo/src/helpers.py), itself after lucidrains/flamingo-pytorch: latents
attend to the concatenation of the image features and themselves. Parameter names inside each block stay
close to OpenFlamingo's so that the checkpoint mapping (checkpoints.py) is a rename of the block index only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    """Return OpenFlamingo's pre-norm bias-free GELU MLP (indices 0, 1, 3 hold weights, as in its checkpoints)."""
    inner = int(dim * mult)
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(), nn.Linear(inner, dim, bias=False)
    )


class PerceiverAttention(nn.Module):
    """Latents attend to [image features; latents]."""

    def __init__(self, *, dim: int, dim_head: int = 64, heads: int = 8):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Return the attention update for ``latents`` (N, n, D) given image features ``x`` (N, v, D)."""
        x, latents = self.norm_media(x), self.norm_latents(latents)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((x, latents), dim=1)).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2) for t in (q, k, v))  # (N, h, *, dh)
        out = F.scaled_dot_product_attention(q, k, v)  # scale dh**-0.5, as OpenFlamingo
        return self.to_out(out.transpose(1, 2).flatten(2))


class PerceiverBlock(nn.Module):
    def __init__(self, *, dim: int, dim_head: int, heads: int, ff_mult: int):
        super().__init__()
        self.attn = PerceiverAttention(dim=dim, dim_head=dim_head, heads=heads)
        self.ff = feed_forward(dim, ff_mult)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        latents = self.attn(x, latents) + latents
        return self.ff(latents) + latents


class PerceiverResampler(nn.Module):
    """(N, v, D) patch features of N images -> (N, num_latents, D) visual tokens."""

    def __init__(
        self, *, dim: int, depth: int = 6, dim_head: int = 64, heads: int = 8, num_latents: int = 64, ff_mult: int = 4
    ):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim))
        self.layers = nn.ModuleList(
            PerceiverBlock(dim=dim, dim_head=dim_head, heads=heads, ff_mult=ff_mult) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (N, num_latents, D) latents for image features ``x`` (N, v, D)."""
        # OpenFlamingo builds its released models without media-time or frame embeddings, so none here.
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for block in self.layers:
            latents = block(x, latents)
        return self.norm(latents)
