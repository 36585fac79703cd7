"""Flamingo as a thin layer over an unmodified transformers causal LM and CLIP vision tower.

    pixels ──CLIPVisionModel──► patch tokens (pre final LN) ──perceiver──► media latents (B, T_img, n, Dv)
    input_ids ──► LM decoder layers, each preceded (every n-th) by a gated cross-attention block on the media

The LM is not copied or re-implemented: its decoder layers are given a cross-attention step that runs
*before* the layer is entered (see `_FusedLayer`), and it keeps its own parameter names, so a transformers
checkpoint of the LM loads into `Flamingo.lm` unchanged and the LM's own attention (SDPA, caches,
gradient checkpointing, beam search) is used as is.
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import CLIPVisionModel, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from symdpo.models.flamingo.cross_attention import GatedCrossAttentionBlock
from symdpo.models.flamingo.mpt_attention import alibi_positions
from symdpo.models.flamingo.perceiver import PerceiverResampler

# Where the decoder layers live in the causal LMs we support (same table as OpenFlamingo's factory).
DECODER_LAYER_PATHS = ("model.layers", "transformer.blocks", "gpt_neox.layers", "transformer.h", "model.decoder.layers")


def find_decoder_layers(lm: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return the attribute path and the ModuleList of ``lm``'s decoder layers."""
    for path in DECODER_LAYER_PATHS:
        obj = lm
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return path, obj
    raise ValueError(f"cannot find the decoder layers of {type(lm).__name__}; tried {', '.join(DECODER_LAYER_PATHS)}")


def position_ids_from_mask(attention_mask: torch.Tensor, past: int = 0) -> torch.Tensor:
    """Return position ids counting only attended tokens (transformers' convention for left padding)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 0)[:, past:]


@dataclass
class MediaContext:
    """What the cross-attention blocks read during one forward (or one whole generate call)."""

    media: torch.Tensor  # (B, T_img, n, Dv) perceiver latents, zero-padded past each row's image count
    num_images: torch.Tensor  # (B,) real images per row
    offset: torch.Tensor  # (B,) images already seen before the tokens of the next LM call
    cache_kv: bool = False  # keep each block's media keys/values (generation: media never change)
    checkpoint: bool = False
    text_time: torch.Tensor | None = None  # (B, T) set per LM call from its input_ids
    fixed_time: torch.Tensor | None = None  # (B, T) given by the caller instead (packed rows: per-pair images)
    kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def expand(self, repeats: int) -> None:
        """Repeat every row ``repeats`` times (beam search), in place."""
        self.media = self.media.repeat_interleave(repeats, 0)
        self.num_images = self.num_images.repeat_interleave(repeats, 0)
        self.offset = self.offset.repeat_interleave(repeats, 0)
        self.kv.clear()


class _FusedLayer:
    """Mixin put in front of a decoder layer's class: applies the gated cross-attention, then the layer.

    It overrides ``__call__`` rather than ``forward`` or a forward hook on purpose: transformers'
    `GradientCheckpointingLayer.__call__` re-runs ``forward`` and hooks during backward, when this forward's
    media are gone; running the cross-attention before entering the layer keeps it out of that replay (it
    is checkpointed separately, with its inputs captured explicitly).
    """

    _flamingo: tuple[int, GatedCrossAttentionBlock, Flamingo]

    def __call__(self, *args, **kwargs):
        index, block, owner = self._flamingo
        ctx = owner._ctx
        if ctx is not None:
            if args:
                args = (owner._cross_attend(index, block, ctx, args[0]),) + args[1:]
            else:
                kwargs["hidden_states"] = owner._cross_attend(index, block, ctx, kwargs["hidden_states"])
        return super().__call__(*args, **kwargs)


_FUSED_CLASSES: dict[type, type] = {}


def _fuse(layer: nn.Module, index: int, block: GatedCrossAttentionBlock, owner: Flamingo) -> None:
    cls = type(layer)
    if cls not in _FUSED_CLASSES:
        _FUSED_CLASSES[cls] = type(f"Flamingo{cls.__name__}", (_FusedLayer, cls), {})
    layer.__class__ = _FUSED_CLASSES[cls]
    # object.__setattr__: not registered as a submodule, so the LM's state-dict names stay its own.
    object.__setattr__(layer, "_flamingo", (index, block, owner))


class Flamingo(nn.Module):
    """CLIP vision tower + perceiver resampler + causal LM with gated cross-attention blocks."""

    def __init__(
        self,
        vision: CLIPVisionModel,
        lm: PreTrainedModel,
        *,
        media_token_id: int,
        eoc_token_id: int,
        cross_attn_every_n_layers: int = 1,
        perceiver_depth: int = 6,
        perceiver_heads: int = 8,
        perceiver_dim_head: int = 64,
        num_latents: int = 64,
        perceiver_ff_mult: int = 4,
        xattn_heads: int = 8,
        xattn_dim_head: int = 64,
        xattn_ff_mult: int = 4,
    ):
        super().__init__()
        self.vision = vision
        self.lm = lm
        self.media_token_id, self.eoc_token_id = media_token_id, eoc_token_id
        self.num_latents = num_latents
        vis_dim = vision.config.hidden_size
        lm_dim = lm.get_input_embeddings().embedding_dim
        self.perceiver = PerceiverResampler(
            dim=vis_dim, depth=perceiver_depth, dim_head=perceiver_dim_head, heads=perceiver_heads,
            num_latents=num_latents, ff_mult=perceiver_ff_mult,
        )
        self.decoder_layers_path, layers = find_decoder_layers(lm)
        # OpenFlamingo: a block before decoder layer i when (i + 1) % every == 0
        self.xattn = nn.ModuleDict(
            {
                str(i): GatedCrossAttentionBlock(
                    dim=lm_dim, dim_visual=vis_dim, dim_head=xattn_dim_head, heads=xattn_heads, ff_mult=xattn_ff_mult
                )
                for i in range(len(layers))
                if (i + 1) % cross_attn_every_n_layers == 0
            }
        )
        for i, block in self.xattn.items():
            _fuse(layers[int(i)], int(i), block, self)
        self._ctx: MediaContext | None = None
        self.gradient_checkpointing = False
        lm.register_forward_pre_hook(self._before_lm_call, with_kwargs=True)
        lm.register_forward_hook(self._after_lm_call, with_kwargs=True)

    # ---- vision ---------------------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Return (N, v, Dv) CLIP patch tokens of (N, 3, H, W) pixels, CLS excluded, before the final LN."""
        # The released OpenFlamingo models were trained on open_clip <= 2.22 tokens, which skip ln_post;
        # transformers' last_hidden_state is likewise taken before post_layernorm (docs/openflamingo.md, "Architecture details").
        params = list(self.vision.parameters())
        # no graph through a frozen tower (the usual case); a tiny model pretrained from scratch trains it
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in params)):
            return self.vision(pixel_values=pixel_values.to(params[0].dtype)).last_hidden_state[:, 1:]

    def resample(self, features: torch.Tensor, images_per_row: list[int]) -> torch.Tensor:
        """Return (B, T_max, n, Dv) media latents for the flat (N, v, Dv) ``features`` of B rows."""
        latents = self.perceiver(features) if features.shape[0] else features.new_zeros(0, self.num_latents, features.shape[-1])
        t_max = max(images_per_row, default=0)
        media = latents.new_zeros(len(images_per_row), max(t_max, 1), self.num_latents, latents.shape[-1])
        start = 0
        for row, count in enumerate(images_per_row):
            media[row, :count] = latents[start : start + count]
            start += count
        return media

    # ---- conditioning -----------------------------------------------------------------------------------
    @contextmanager
    def conditioned(self, media: torch.Tensor, num_images: torch.Tensor, offset: torch.Tensor | None = None, *,
                    cache_kv: bool = False, media_time: torch.Tensor | None = None):
        """Within the block, LM calls cross-attend to ``media``; ``offset`` (B,) counts images already seen.

        ``media_time`` (B, T) fixes the 1-based image each token attends to (0: none) instead of counting the
        ``<image>`` tokens of the row (a packed row: text before a pair's first image sees no earlier pair's).
        """
        if offset is None:
            offset = torch.zeros_like(num_images)
        self._ctx = MediaContext(
            media=media, num_images=num_images, offset=offset.clone(), cache_kv=cache_kv,
            checkpoint=self.gradient_checkpointing and self.training, fixed_time=media_time,
        )
        try:
            yield self._ctx
        finally:
            self._ctx = None

    def _before_lm_call(self, module, args, kwargs):
        ctx = self._ctx
        if ctx is None:
            return None
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None:
            raise ValueError("Flamingo needs input_ids (not inputs_embeds) to locate <image> tokens")
        if ctx.fixed_time is not None:
            ctx.text_time = ctx.fixed_time
            return None
        is_media = input_ids == self.media_token_id
        # each token attends to the latest <image> at or before it; a surplus <image> (e.g. generated) keeps
        # the last real one rather than pointing at a zero-padded slot
        ctx.text_time = torch.minimum(ctx.offset[:, None] + is_media.cumsum(-1), ctx.num_images[:, None])
        return None

    def _after_lm_call(self, module, args, kwargs, output):
        ctx = self._ctx
        if ctx is not None:
            input_ids = kwargs.get("input_ids", args[0] if args else None)
            ctx.offset = ctx.offset + (input_ids == self.media_token_id).sum(-1)
        return None

    def _cross_attend(self, index: int, block: GatedCrossAttentionBlock, ctx: MediaContext, hidden: torch.Tensor):
        kv = ctx.kv.get(index)
        if kv is None:
            kv = block.media_kv(ctx.media.to(hidden.dtype))
            if ctx.cache_kv:
                ctx.kv[index] = kv
        if ctx.checkpoint:
            return checkpoint(block, hidden, kv, ctx.text_time, self.num_latents, use_reentrant=False)
        return block(hidden, kv, ctx.text_time, self.num_latents)

    # ---- forward ------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        media: torch.Tensor | None = None,
        num_images: torch.Tensor | None = None,
        media_offset: torch.Tensor | None = None,
        media_time: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        use_cache: bool = False,
        logits_to_keep: int | torch.Tensor = 0,
    ) -> CausalLMOutputWithPast:
        """Return the LM output (logits, cache) for ``input_ids`` (B, T) cross-attending to ``media``.

        ``media`` (B, T_img, n, Dv) comes from `resample`; ``num_images`` (B,) real images per row;
        ``media_offset`` (B,) images that precede these tokens in an earlier, cached call; ``media_time`` (B, T)
        the image each token attends to, where the caller knows better than counting (packed rows).
        ``logits_to_keep``: the last N columns, or a (K,) tensor of columns (the LM may return all of them).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            # positions count attended tokens only, so left padding does not shift them; the mask may span
            # cached tokens too (transformers' convention), so keep the last T positions
            position_ids = position_ids_from_mask(attention_mask)[:, -input_ids.shape[1] :]
        kwargs = _lm_kwargs(
            self.lm, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, use_cache=use_cache, logits_to_keep=logits_to_keep,
        )
        # MPT takes no position_ids: its ALiBi gets the positions this way (shared-prefix rows need them)
        with alibi_positions(self.lm, position_ids if past_key_values is None else None):
            if media is None:
                return self.lm(**kwargs)
            if num_images is None:
                num_images = torch.full((input_ids.shape[0],), media.shape[1], device=input_ids.device)
            with self.conditioned(media, num_images, media_offset, media_time=media_time):
                return self.lm(**kwargs)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute LM layers and cross-attention blocks in backward instead of storing activations."""
        self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.gradient_checkpointing = True

    # ---- generation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        media: torch.Tensor,
        num_images: torch.Tensor,
        *,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        pad_token_id: int | None = None,
        **generate_kwargs,
    ) -> torch.Tensor:
        """Return (B, new) generated token ids (greedy or beam search, stopping at ``<|endofchunk|>``).

        The images are encoded and the context prefilled once per sequence; only then are the KV cache and
        the media repeated for the beams (OpenFlamingo encodes and prefills once per beam). The media keys
        and values of every cross-attention block are computed once and reused at every step.
        """
        from transformers import DynamicCache

        prompt_len = input_ids.shape[1]
        cache = DynamicCache(config=self.lm.config)
        with self.conditioned(media, num_images, cache_kv=True) as ctx:
            if prompt_len > 1:
                self.forward_prefix(input_ids[:, :-1], attention_mask[:, :-1], cache)
            if num_beams > 1:
                cache.batch_repeat_interleave(num_beams)
                ctx.expand(num_beams)
            out = self.lm.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                **{_cache_name(self.lm): cache},
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                length_penalty=length_penalty,
                do_sample=False,
                eos_token_id=self.eoc_token_id,
                pad_token_id=pad_token_id,
                **generate_kwargs,
            )
        return out[:, prompt_len:]

    def forward_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache) -> None:
        """Run the LM over a prefix under the current conditioning, filling ``cache``."""
        self.lm(**_lm_kwargs(
            self.lm, input_ids=input_ids, attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask), past_key_values=cache, use_cache=True,
            logits_to_keep=1,
        ))


@functools.cache
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def _cache_name(lm: nn.Module) -> str:
    # transformers 5 renames past_key_values to cache (the old name warns until it is removed)
    return "cache" if "cache" in _forward_params(type(lm)) else "past_key_values"


def _lm_kwargs(lm: nn.Module, *, logits_to_keep: int = 0, position_ids=None, past_key_values=None, **kwargs) -> dict:
    """Return the LM call's keyword arguments, leaving out those its forward does not take (MPT: ALiBi)."""
    params = _forward_params(type(lm))
    kwargs[_cache_name(lm)] = past_key_values
    if "position_ids" in params:
        kwargs["position_ids"] = position_ids
    if (isinstance(logits_to_keep, torch.Tensor) or logits_to_keep) and "logits_to_keep" in params:
        kwargs["logits_to_keep"] = logits_to_keep
    return kwargs
