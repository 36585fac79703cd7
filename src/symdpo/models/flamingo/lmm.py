"""`FlamingoLMM`: the interleaved-model interface (models/interface.py) over a `Flamingo` and its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from symdpo.models.flamingo.model import Flamingo, position_ids_from_mask
from symdpo.models.interface import Context, context_text

IMAGE_TOKEN = "<image>"
END_OF_CHUNK = "<|endofchunk|>"


@dataclass
class Batch:
    """Token ids of B contexts (optionally followed by answers), left-padded, with their images."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    answer_mask: torch.Tensor  # (B, T) True on answer tokens (the tokens whose log-prob is scored)
    images: list[list]  # per row, its image items in order
    num_images: torch.Tensor  # (B,)


def add_flamingo_tokens(tokenizer) -> None:
    """Add ``<|endofchunk|>``, ``<image>`` (and ``<PAD>`` when missing) exactly as OpenFlamingo does."""
    # Order matters: the released checkpoints' embedding rows follow it (open_flamingo/src/factory.py).
    tokenizer.add_special_tokens({"additional_special_tokens": [END_OF_CHUNK, IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "<PAD>"})


class FlamingoLMM:
    """A Flamingo with its tokenizer and image preprocessing, speaking in contexts and strings."""

    end_of_chunk = END_OF_CHUNK

    def __init__(self, model: Flamingo, tokenizer, *, config=None, image_size: int = 224):
        self.model, self.tokenizer, self.config, self.image_size = model, tokenizer, config, image_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

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
        from symdpo.data.images import preprocess_clip

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
        out = self.model(
            batch.input_ids.to(dev), batch.attention_mask.to(dev),
            media=self.media(batch), num_images=batch.num_images.to(dev),
        )
        return sequence_logps(out.logits, batch.input_ids.to(dev), batch.answer_mask.to(dev))

    def pair_logps(
        self, contexts: list[Context], chosen: list[str], rejected: list[str], *, shared_prefix: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return summed log-probs of chosen and rejected answers (B,) each, and their token counts (B,) each.

        With ``shared_prefix`` each row is one sequence, context + chosen + rejected, under a tree-shaped
        attention mask: the rejected answer sees the context but not the chosen one, and takes the positions
        the chosen one has. The context (images included) is thus encoded once, in a single forward pass, and
        its gradient gathers both answers' contributions. Otherwise each answer is scored on its own copy of the
        context (the naive concatenation). Both give the same values and gradients.
        """
        if not shared_prefix:
            logps, counts = self.answer_logps(contexts + contexts, chosen + rejected)
            b = len(contexts)
            return logps[:b], logps[b:], counts[:b], counts[b:]
        dev = self.device
        batch = self.tokenize(contexts)  # left-padded: every context ends in the same column
        ch_ids, ch_mask = self._right_padded(chosen)
        rj_ids, rj_mask = self._right_padded(rejected)
        n_ctx, n_ch, n_rj = batch.input_ids.shape[1], ch_ids.shape[1], rj_ids.shape[1]
        ctx_mask = batch.attention_mask.bool()
        input_ids = torch.cat([batch.input_ids, ch_ids, rj_ids], 1)
        branch = torch.tensor([0] * n_ctx + [1] * n_ch + [2] * n_rj)  # 0 context, 1 chosen, 2 rejected
        total = len(branch)
        visible = torch.ones(total, total, dtype=torch.bool).tril()  # causal ...
        visible &= (branch[None, :] == 0) | (branch[:, None] == branch[None, :])  # ... and never the other answer
        visible = visible[None] & torch.cat([ctx_mask, ch_mask, rj_mask], 1)[:, None, :]  # no padding keys
        visible |= torch.eye(total, dtype=torch.bool)  # a padding query attends itself (its output is unused)
        dtype = next(self.model.lm.parameters()).dtype
        if torch.is_autocast_enabled(dev.type):
            dtype = torch.get_autocast_dtype(dev.type)
        additive = torch.zeros(visible.shape, dtype=dtype).masked_fill_(~visible, torch.finfo(dtype).min)
        start = ctx_mask.sum(1, keepdim=True)  # both answers continue the context's positions
        positions = torch.cat([position_ids_from_mask(batch.attention_mask), start + torch.arange(n_ch),
                               start + torch.arange(n_rj)], 1)
        out = self.model(input_ids.to(dev), additive[:, None].to(dev), media=self.media(batch),
                         num_images=batch.num_images.to(dev), position_ids=positions.to(dev),
                         logits_to_keep=1 + n_ch + n_rj)
        logits = out.logits  # columns: last context token, chosen tokens, rejected tokens
        first = logits[:, :1]  # predicts both answers' first token
        c_sum, c_count = masked_logps(torch.cat([first, logits[:, 1:n_ch]], 1), ch_ids.to(dev), ch_mask.to(dev))
        r_sum, r_count = masked_logps(torch.cat([first, logits[:, 1 + n_ch:-1]], 1), rj_ids.to(dev), rj_mask.to(dev))
        return c_sum, r_sum, c_count, r_count

    def _right_padded(self, answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (B, A) token ids of the answers, right-padded, and their (B, A) bool mask."""
        tok = self.tokenizer
        ids = [tok(a, add_special_tokens=False)["input_ids"] for a in answers]
        if any(not a for a in ids):
            raise ValueError("an answer tokenizes to nothing")
        width = max(len(a) for a in ids)
        padded = torch.tensor([a + [tok.pad_token_id] * (width - len(a)) for a in ids])
        mask = torch.tensor([[True] * len(a) + [False] * (width - len(a)) for a in ids])
        return padded, mask

    def score(self, contexts: list[Context], answers: list[str]) -> torch.Tensor:
        """Return (B,) summed log-probabilities of each answer given its context (answer tokens only)."""
        with torch.no_grad():
            return self.answer_logps(contexts, answers)[0]

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

    def save_pretrained(self, path: str | Path, *, trainable_only: bool = False) -> None:
        """Write the model to ``path`` (safetensors + JSON config + tokenizer)."""
        from symdpo.models.flamingo.io import save_flamingo

        save_flamingo(self, path, trainable_only=trainable_only)


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (B,) summed log-probs of the tokens where ``answer_mask`` is True and (B,) their counts.

    Token t is predicted by the logits at t-1, so the mask is shifted with the labels.
    """
    return masked_logps(logits[:, :-1], input_ids[:, 1:], answer_mask[:, 1:])


def masked_logps(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (B,) summed log-probs of ``labels`` where ``mask`` is True, and (B,) their counts.

    ``logits[:, t]`` predicts ``labels[:, t]``. The log-softmax runs over the masked positions only: the
    context positions never need a full-vocabulary softmax.
    """
    logps = torch.log_softmax(logits[mask].float(), dim=-1).gather(-1, labels[mask][:, None]).squeeze(-1)
    rows = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
    summed = torch.zeros(mask.shape[0], device=logits.device, dtype=logps.dtype).index_add(0, rows, logps)
    return summed, mask.sum(-1)


def _strip_generated(text: str, tokenizer) -> str:
    text = text.split(END_OF_CHUNK, 1)[0]
    for special in (tokenizer.pad_token, tokenizer.eos_token):
        if special:
            text = text.replace(special, "")
    return text
