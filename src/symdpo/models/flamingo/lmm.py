"""`FlamingoLMM`: the interleaved-model interface (models/interface.py) over a `Flamingo` and its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from symdpo.models.flamingo import training
from symdpo.models.flamingo.cross_attention import GatedCrossAttentionBlock
from symdpo.models.flamingo.io import save_flamingo
from symdpo.models.flamingo.model import Flamingo, position_ids_from_mask
from symdpo.models.flamingo.tokens import END_OF_CHUNK, IMAGE_TOKEN
from symdpo.models.interface import Context, ModelInfo, ParamGroup, TrainableModel, TrainingSpec, context_text
from symdpo.models.packing import TreeRows, kept_logits, pack_tree, packed_logps
from symdpo.models.prompts import OPENFLAMINGO, PromptFormat, check_kind, check_style
from symdpo.models.scoring import (
    additive_mask,
    answer_suffix,
    compute_dtype,
    masked_logps,
    right_padded,
    sequence_logps,
)
from symdpo.pixels import preprocess_clip


@dataclass
class Batch:
    """Token ids of B contexts (optionally followed by answers), left-padded, with their images."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    answer_mask: torch.Tensor  # (B, T) True on answer tokens (the tokens whose log-prob is scored)
    images: list[list]  # per row, its image items in order
    num_images: torch.Tensor  # (B,)


class FlamingoLMM(TrainableModel):
    """A Flamingo with its tokenizer and image preprocessing, speaking in contexts and strings."""

    family = "flamingo"
    end_of_chunk = END_OF_CHUNK
    default_prompt_style = "openflamingo"  # OpenFlamingo has no chat format: its own is the eval's
    takes_image_features = True  # a context may carry (v, D) CLIP features in place of an image

    def __init__(self, model: Flamingo, tokenizer, *, config=None, image_size: int = 224, source: str | None = None):
        self.model, self.tokenizer, self.config, self.image_size = model, tokenizer, config, image_size
        self.source = source

    @property
    def module(self) -> torch.nn.Module:
        """The whole Flamingo (vision, perceiver, cross-attention, LM)."""
        return self.model

    def _set_module(self, module: torch.nn.Module) -> None:
        self.model = module

    def _frozen_eval(self) -> list[torch.nn.Module]:
        return [self.model.vision]

    # ---- inputs -------------------------------------------------------------------------------------------
    def tokenize(self, contexts: list[Context], answers: list[str] | None = None) -> Batch:
        """Return the left-padded token batch of ``contexts`` (+ ``answers``, tokenized separately)."""
        tok = self.tokenizer
        rows, masks, images = [], [], []
        for i, context in enumerate(contexts):
            text, imgs = context_text(context, IMAGE_TOKEN)
            ids = tok(text)["input_ids"]  # the tokenizer's own BOS handling, as OpenFlamingo's eval
            answer_ids = tok(answers[i], add_special_tokens=False)["input_ids"] if answers is not None else []
            if answers is not None and not answer_ids:
                raise ValueError(f"answer {i} ({answers[i]!r}) tokenizes to nothing")
            rows.append(ids + answer_ids)
            masks.append([False] * len(ids) + [True] * len(answer_ids))
            images.append(imgs)
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        answer_mask = torch.tensor([[False] * (width - len(m)) + m for m in masks])
        counts = (input_ids == self.model.media_token_id).sum(1)
        for i, imgs in enumerate(images):
            if counts[i] != len(imgs):
                raise ValueError(f"context {i}: {len(imgs)} images but {int(counts[i])} {IMAGE_TOKEN} tokens in its text")
        return Batch(input_ids, attention_mask, answer_mask, images, counts)

    def image_features(self, images: list) -> torch.Tensor:
        """Return (N, v, Dv) vision features of image items: PIL images, (3, H, W) pixels or (v, Dv) features."""
        if not images:
            dim = self.model.vision.config.hidden_size
            return torch.zeros(0, 1, dim, device=self.device)
        feats: list[torch.Tensor | None] = [None] * len(images)
        to_encode = []
        for i, im in enumerate(images):
            if isinstance(im, torch.Tensor) and im.ndim == 2:
                feats[i] = im.to(self.device)
            else:
                to_encode.append(i)
        if to_encode:
            pixels = self.pixels([images[i] for i in to_encode]).to(self.device)
            encoded = self.model.encode_images(pixels)
            for j, i in enumerate(to_encode):
                feats[i] = encoded[j]
        return torch.stack([f.to(feats[0].dtype) for f in feats])

    def pixels(self, images: list) -> torch.Tensor:
        """Return (N, 3, S, S) CLIP-normalised pixels of PIL images or already preprocessed tensors."""
        out = []
        for im in images:
            if isinstance(im, Image.Image):
                out.append(preprocess_clip([im], size=self.image_size)[0])
            elif isinstance(im, torch.Tensor) and im.ndim == 3:
                out.append(im)
            else:
                raise TypeError(f"unsupported image item {type(im).__name__}")
        return torch.stack(out)

    def media(self, batch: Batch) -> torch.Tensor:
        """Return the (B, T_img, n, Dv) perceiver latents of the batch's images."""
        flat = [im for row in batch.images for im in row]
        return self.model.resample(self.image_features(flat), [len(r) for r in batch.images])

    # ---- the interface ---------------------------------------------------------------------------------
    def answer_logps(self, contexts: list[Context], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (B,) summed log-probs of each answer given its context and (B,) answer token counts.

        Differentiable (used by training); only answer tokens count: never padding, never the context.
        """
        batch = self.tokenize(contexts, answers)
        dev = self.device
        k = answer_suffix(batch.answer_mask)  # logits only where they score an answer token
        out = self.model(
            batch.input_ids.to(dev), batch.attention_mask.to(dev),
            media=self.media(batch), num_images=batch.num_images.to(dev), logits_to_keep=k,
        )
        return sequence_logps(out.logits[:, -k:], batch.input_ids[:, -k:].to(dev), batch.answer_mask[:, -k:].to(dev))

    def pair_logps(
        self, contexts: list[Context], chosen: list[str], rejected: list[str], *, shared_prefix: bool = True,
        max_tokens_per_row: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return summed log-probs of chosen and rejected answers (B,) each, and their token counts (B,) each.

        With ``shared_prefix`` each row is one sequence, context + chosen + rejected, under a tree-shaped
        attention mask: the rejected answer sees the context but not the chosen one, and takes the positions
        the chosen one has. The context (images included) is thus encoded once, in a single forward pass, and
        its gradient gathers both answers' contributions. Otherwise each answer is scored on its own copy of the
        context (the naive concatenation). ``max_tokens_per_row`` packs the pairs' trees into rows of at most
        that many tokens, with no padding (models/packing.py). All give the same values and gradients.
        """
        if not shared_prefix:
            logps, counts = self.answer_logps(contexts + contexts, chosen + rejected)
            b = len(contexts)
            return logps[:b], logps[b:], counts[:b], counts[b:]
        dev = self.device
        batch = self.tokenize(contexts)  # left-padded: every context ends in the same column
        ch_ids, ch_mask = right_padded(self.tokenizer, chosen)
        rj_ids, rj_mask = right_padded(self.tokenizer, rejected)
        n_ch, n_rj = ch_ids.shape[1], rj_ids.shape[1]
        ctx_mask = batch.attention_mask.bool()
        start = ctx_mask.sum(1, keepdim=True)  # both answers continue the context's positions
        positions = torch.cat([position_ids_from_mask(batch.attention_mask), start + torch.arange(n_ch),
                               start + torch.arange(n_rj)], 1)
        tree = TreeRows.build(batch.input_ids, ctx_mask, ch_ids, ch_mask, rj_ids, rj_mask, positions)
        if max_tokens_per_row:
            return self._packed_pair_logps(batch, tree, max_tokens_per_row)
        out = self.model(tree.input_ids.to(dev), self._additive(tree.visible).to(dev), media=self.media(batch),
                         num_images=batch.num_images.to(dev), position_ids=tree.positions.to(dev),
                         logits_to_keep=1 + n_ch + n_rj)
        logits = out.logits  # columns: last context token, chosen tokens, rejected tokens
        first = logits[:, :1]  # predicts both answers' first token
        c_sum, c_count = masked_logps(torch.cat([first, logits[:, 1:n_ch]], 1), ch_ids.to(dev), ch_mask.to(dev))
        r_sum, r_count = masked_logps(torch.cat([first, logits[:, 1 + n_ch:-1]], 1), rj_ids.to(dev), rj_mask.to(dev))
        return c_sum, r_sum, c_count, r_count

    def _additive(self, visible: torch.Tensor) -> torch.Tensor:
        """Return the (B, 1, T, T) additive mask of a bool visibility, in the dtype the LM computes in."""
        return additive_mask(visible, compute_dtype(self.model.lm, self.device))

    def _packed_pair_logps(self, batch: Batch, tree: TreeRows, max_tokens: int):
        dev = self.device
        packed = pack_tree(tree, max_tokens, self.tokenizer.pad_token_id)
        # each row's images are its pairs' images in order; a token attends to the latest image of its own pair
        images = [[im for i in row for im in batch.images[i]] for row in packed.rows]
        media_time = torch.zeros(packed.input_ids.shape, dtype=torch.long)
        for row in packed.rows:
            seen = 0
            for i in row:
                r, first, n = packed.spans[i]
                own = (packed.input_ids[r, first:first + n] == self.model.media_token_id).long().cumsum(0)
                media_time[r, first:first + n] = torch.where(own > 0, own + seen, 0)
                seen += int(batch.num_images[i])
        media = self.model.resample(self.image_features([im for row in images for im in row]),
                                    [len(row) for row in images])
        out = self.model(packed.input_ids.to(dev), self._additive(packed.visible).to(dev), media=media,
                         num_images=torch.tensor([len(row) for row in images], device=dev),
                         media_time=media_time.to(dev), position_ids=packed.positions.to(dev),
                         logits_to_keep=packed.keep.to(dev))
        return packed_logps(kept_logits(out.logits, packed), packed)

    @torch.no_grad()
    def generate(
        self,
        contexts: list[Context],
        *,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        length_penalty: float = 1.0,
    ) -> list[str]:
        """Return the decoded continuation of each context, stopped at ``<|endofchunk|>`` (marker removed)."""
        batch = self.tokenize(contexts)
        dev = self.device
        new = self.model.generate(
            batch.input_ids.to(dev), batch.attention_mask.to(dev), self.media(batch), batch.num_images.to(dev),
            max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=False)
        return [_strip_generated(t, self.tokenizer) for t in texts]

    def answer_token_counts(self, answers: list[str], contexts: list[Context] | None = None) -> list[int]:
        """Return how many tokens each answer scores (tokenized alone, as OpenFlamingo scores it: ``contexts``
        change nothing)."""
        return [len(self.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]

    def prompt_format(self, kind: str, style: str | None = None) -> PromptFormat:
        """Return OpenFlamingo's evaluation format for task ``kind`` (Flamingo's native format is the same)."""
        check_style(style or self.default_prompt_style)
        return OPENFLAMINGO[check_kind(kind)]

    # ---- training ---------------------------------------------------------------------------------------
    def prepare_training(self, spec: TrainingSpec) -> list[ParamGroup]:
        """Set what trains under ``spec`` (models/flamingo/training.py); return the optimiser's groups."""
        groups = training.prepare_training(self.model, self.tokenizer, spec)
        self.train(True)
        return groups

    def save_pretrained(self, path: str | Path, *, trainable_only: bool = False) -> None:
        """Write the model to ``path`` (safetensors + JSON config + tokenizer)."""
        save_flamingo(self, path, trainable_only=trainable_only)

    def _fold_trained(self) -> bool:
        return training.finish_training(self.model)  # new-token rows and LoRA back into the weights

    @property
    def shard_units(self) -> tuple[str, ...]:
        """Module classes FSDP shards as units: each LM decoder layer (with its cross-attention fused in front),
        each gated cross-attention block, the perceiver, and the vision tower's layers."""
        m = self.model
        names = {type(layer).__name__ for layer in m.lm.get_submodule(m.decoder_layers_path)}
        names |= {"GatedCrossAttentionBlock", "PerceiverResampler"}
        present = {type(x).__name__ for x in m.vision.modules()}
        names |= {n for n in (getattr(m.vision, "_no_split_modules", None) or ()) if n in present}
        return tuple(sorted(names))

    @property
    def sharded_methods(self) -> dict[type[torch.nn.Module], tuple[str, ...]]:
        """Return the cross-attention's ``media_kv``: each call computes the media keys and values once, outside
        the blocks' ``forward``."""
        return {GatedCrossAttentionBlock: ("media_kv",)}

    def info(self) -> ModelInfo:
        """Return the model's family, size, default policy and parts."""
        m = self.model
        trainable = {id(p) for p in m.perceiver.parameters()} | {id(p) for p in m.xattn.parameters()}
        trainable_n = sum(p.numel() for p in m.parameters() if id(p) in trainable)
        trainable_n += len(training.new_token_rows(self.tokenizer)) * m.lm.get_input_embeddings().weight.shape[1]
        parts = {"vision": m.vision, "perceiver": m.perceiver, "cross-attention": m.xattn, "lm": m.lm}
        return ModelInfo(
            family=f"flamingo ({len(m.xattn)} cross-attention blocks, LM {type(m.lm).__name__})",
            parameters=sum(p.numel() for p in m.parameters()), trainable=trainable_n,
            default_policy="openflamingo", parts={k: sum(p.numel() for p in v.parameters()) for k, v in parts.items()},
            prompt_style=self.default_prompt_style, end_of_chunk=self.end_of_chunk)


def _strip_generated(text: str, tokenizer) -> str:
    text = text.split(END_OF_CHUNK, 1)[0]
    for special in (tokenizer.pad_token, tokenizer.eos_token):
        if special:
            text = text.replace(special, "")
    return text
