"""Contexts to model inputs for HF families: markers, images, demonstration dropping, left-padded batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from PIL import Image

from symdpo.models.hf.families import Family
from symdpo.models.prompts import AGNOSTIC_END, move_trailing_spaces

log = logging.getLogger("symdpo.models.hf")


@dataclass
class Batch:
    """Left-padded token ids of B contexts (+ answers), the answer mask, and the family's image inputs."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    answer_mask: torch.Tensor  # (B, T) True on answer tokens only (never prompt, image or padding tokens)
    extras: dict = field(default_factory=dict)  # pixel_values etc., as the model's forward names them
    dropped: list[int] = field(default_factory=list)  # demonstrations dropped from the front, per row
    row_extras: list[dict] = field(default_factory=list)  # each row's image tensors before collation

    def model_inputs(self, device) -> dict:
        """Return the keyword arguments of the HF model's forward / generate, on ``device``."""
        out = {"input_ids": self.input_ids.to(device), "attention_mask": self.attention_mask.to(device)}
        out.update({k: v.to(device) for k, v in self.extras.items()})
        return out


def to_pil(item) -> Image.Image:
    """Return a PIL image of a context image: PIL as is, a (3, H, W) tensor in [0, 1] or uint8 converted."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, torch.Tensor) and item.ndim == 3 and item.shape[0] == 3:
        x = item.detach().cpu()
        if x.dtype != torch.uint8:
            if x.min() < 0 or x.max() > 1:
                # normalised pixels cannot be inverted without knowing the normalisation: refuse, don't guess
                raise ValueError("HF adapters take (3, H, W) image tensors in [0, 1] or uint8, not normalised pixels")
            x = (x.float() * 255).round().to(torch.uint8)
        return Image.fromarray(x.permute(1, 2, 0).numpy())
    shape = tuple(item.shape) if isinstance(item, torch.Tensor) else ""
    raise TypeError(f"HF adapters take PIL images or (3, H, W) tensors, not {type(item).__name__}{shape} "
                    "(precomputed vision features are a Flamingo-only input)")


def split_demos(context: list, end: str) -> list[list]:
    """Return the context cut after each ``end`` marker (and the newlines right after it): demonstrations
    first, the open query last."""
    chunks: list[list] = [[]]
    for item in context:
        if not isinstance(item, str):
            chunks[-1].append(item)
            continue
        if len(chunks) > 1 and not chunks[-1] and item.startswith("\n"):  # a turn's newlines stay with it
            rest = item.lstrip("\n")
            chunks[-2].append(item[:len(item) - len(rest)])
            item = rest
        pieces = item.split(end)
        for j, piece in enumerate(pieces):
            if j and piece.startswith("\n"):
                rest = piece.lstrip("\n")
                chunks[-2].append(piece[:len(piece) - len(rest)])
                piece = rest
            if piece:
                chunks[-1].append(piece)
            if j < len(pieces) - 1:
                chunks[-1].append(end)
                chunks.append([])
    return chunks


def _merge_text(items: list) -> list:
    """Return ``items`` with neighbouring strings joined (processors treat each string item as one prompt)."""
    out: list = []
    for it in items:
        if isinstance(it, str) and out and isinstance(out[-1], str):
            out[-1] += it
        else:
            out.append(it)
    return out


class Encoder:
    """Builds batches for one family's processor; drops whole demonstrations from the front when too long."""

    def __init__(self, family: Family, processor, *, end_of_chunk: str, max_length: int,
                 prefixes: tuple[str, ...] = ()):
        self.family, self.processor, self.end, self.max_length = family, processor, end_of_chunk, max_length
        self.prefixes = tuple(p for p in prefixes if p)  # a format's system turn: kept when demonstrations drop
        self.tokenizer = processor.tokenizer
        self.warned = False

    def normalise(self, context: list) -> list:
        """Return the context with the model-agnostic end marker written as the family's, images as PIL."""
        return [it.replace(AGNOSTIC_END, self.end) if isinstance(it, str) else to_pil(it) for it in context]

    def answer_ids(self, answer: str, context: list | None = None) -> list[int]:
        """Return the answer's token ids as the model reads them after ``context`` (alone when None).

        As lm-evaluation-harness: the context's trailing spaces start the answer, and the answer's ids are
        those after the context's in the tokenization of context + answer. The context's last text (after its
        last image or end marker, both tokens of their own) stands for the whole: tokenizers split at
        special tokens, so the text before it cannot change how the answer is cut.
        """
        tail, spaces = move_trailing_spaces(self.text_tail(context)) if context else ("", "")
        answer = spaces + answer.replace(AGNOSTIC_END, self.end)
        if not tail:
            ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        else:
            head = self.tokenizer(tail, add_special_tokens=False)["input_ids"]
            ids = self.tokenizer(tail + answer, add_special_tokens=False)["input_ids"][len(head):]
        if not ids:
            raise ValueError(f"answer {answer!r} tokenizes to nothing")
        return ids

    def text_tail(self, context: list) -> str:
        """Return the context's text after its last image (and after its last end marker), as the model has it."""
        last = context[-1] if context else ""
        text = last.replace(AGNOSTIC_END, self.end) if isinstance(last, str) else ""
        return text.rsplit(self.end, 1)[-1]

    def moved_spaces(self, context: list) -> str:
        """Return the trailing spaces the model reads as the start of the answer to ``context``."""
        return move_trailing_spaces(self.text_tail(context))[1]

    def encode(self, context: list, reserve: int) -> tuple[list[int], dict, int]:
        """Return (ids, image tensors, demonstrations dropped) of one context leaving ``reserve`` tokens free."""
        # demonstrations end at the model-agnostic marker where the context has it (a chat turn's own
        # end-of-turn token is no boundary), else at the family's
        agnostic = any(isinstance(it, str) and AGNOSTIC_END in it for it in context)
        chunks = [self.normalise(c) for c in split_demos(context, AGNOSTIC_END if agnostic else self.end)]
        if chunks[-1] and isinstance(chunks[-1][-1], str):  # its trailing spaces belong to the answer
            chunks[-1][-1] = move_trailing_spaces(chunks[-1][-1])[0]
        first = chunks[0][0] if chunks[0] and isinstance(chunks[0][0], str) else ""
        head = next((p for p in self.prefixes if first.startswith(p)), "")
        dropped = 0
        while True:
            kept = [it for c in chunks[dropped:] for it in c]
            items = _merge_text(([head] if dropped and head else []) + kept)
            ids, extras = self.family.encode(self.processor, items)
            if len(ids) + reserve <= self.max_length:
                return ids, extras, dropped
            if dropped == len(chunks) - 1:
                raise ValueError(f"the query alone takes {len(ids)} tokens (+{reserve} for the answer), more than "
                                 f"the model's maximum length {self.max_length}")
            dropped += 1

    def batch(self, contexts: list[list], answers: list[str] | None = None, *, reserve: int | list[int] = 0) -> Batch:
        """Return the left-padded batch of ``contexts`` (+ ``answers``), ``reserve`` tokens (per row) kept free."""
        rows, masks, extras, dropped = [], [], [], []
        for i, context in enumerate(contexts):
            ans = self.answer_ids(answers[i], context) if answers is not None else []
            free = reserve[i] if isinstance(reserve, list) else reserve
            ids, ex, n = self.encode(context, free + len(ans))
            rows.append(ids + ans)
            masks.append([False] * len(ids) + [True] * len(ans))
            extras.append(ex)
            dropped.append(n)
        if any(dropped) and not self.warned:
            self.warned = True  # once per model: a long eval would otherwise repeat it for every item
            log.warning("contexts longer than the model's %d tokens: dropped %s demonstration(s) from the front "
                        "(the query is always kept; said once)", self.max_length, max(dropped))
        batch = self.pad(rows, masks, extras)
        batch.dropped = dropped
        return batch

    def pad(self, rows: list[list[int]], masks: list[list[bool]], extras: list[dict]) -> Batch:
        """Return the left-padded batch of token ``rows`` with their answer masks and collated image inputs."""
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        answer_mask = torch.tensor([[False] * (width - len(m)) + m for m in masks])
        model_extras = self.family.collate(extras, input_ids, self.processor)
        return Batch(input_ids, attention_mask, answer_mask, model_extras, row_extras=extras)
