"""Record schemas (preference and SFT), their invariants, and OpenFlamingo rendering.

Records carry no prompt text: images, demonstrations and the query are stored as data, and
``render_record`` writes them in a model's prompt format (``model.prompt_format``), so one file serves any
model family; ``render_openflamingo`` is OpenFlamingo's wording.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from symdpo.data.paths import check_relpath
from symdpo.data.vocab import words_of
from symdpo.models.prompts import AGNOSTIC_END as END_OF_CHUNK
from symdpo.models.prompts import OPENFLAMINGO, PromptFormat, fill, join_prompt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Demo(_Strict):
    """One demonstration: its image, question (None for captions), the answer shown and the real one."""

    image: int
    question: str | None = None
    answer: str  # as shown to the model: a symbol, or the text answer / caption
    original_answer: str  # hidden from the model; equals ``answer`` in ordinary demonstrations


class Query(_Strict):
    """The query: its image, question (None for captions), canonical answer and all reference answers."""

    image: int
    question: str | None = None
    answer: str
    answers: list[str]


@functools.lru_cache(maxsize=65536)
def _question_words(question: str) -> frozenset[str]:
    """Return the words of a question (cached: contexts repeat the same questions)."""
    return frozenset(words_of([question]))


def _fail(field: str, message: str) -> None:
    """Raise the error pydantic reports; the ``field:`` prefix lets ``DataError`` name the field."""
    raise ValueError(f"{field}: {message}")


class _Sequence(_Strict):
    id: str
    source: str
    images: list[str]
    context: list[Demo]
    query: Query

    def _check_images(self) -> None:
        """Check images are safe, distinct, and indexed in order of appearance."""
        for i, p in enumerate(self.images):
            problem = check_relpath(p)
            if problem:
                _fail(f"images.{i}", f"{problem}: {p!r}")
        if len(set(self.images)) != len(self.images):
            _fail("images", "an image appears twice in one context")
        if len(self.images) != len(self.context) + 1:
            _fail("images", f"{len(self.images)} images for {len(self.context)} demonstrations + 1 query")
        for i, d in enumerate(self.context):
            if d.image != i:
                _fail(f"context.{i}.image", f"must be {i} (images are listed in order of appearance)")
        if self.query.image != len(self.context):
            _fail("query.image", f"must be {len(self.context)} (the query image comes last)")


class PreferenceRecord(_Sequence):
    """A DPO pair: a context, a query, a chosen and a rejected answer."""

    kind: Literal["symbol", "icl"]
    chosen: str
    rejected: str
    rejected_type: Literal["text", "wrong_symbol", "wrong_answer"]
    symbols: dict[str, str]  # original answer -> symbol shown

    @model_validator(mode="after")
    def _invariants(self) -> PreferenceRecord:
        self._check_images()
        if not self.context:
            _fail("context", "a preference record needs demonstrations")
        if self.chosen == self.rejected:
            _fail("rejected", "equals chosen")
        if self.kind == "icl":
            self._check_icl()
        else:
            self._check_symbol()
        return self

    def _check_icl(self) -> None:
        """Ordinary demonstrations: answers shown as they are, the query's real answer chosen."""
        if self.symbols:
            _fail("symbols", "must be empty in an 'icl' record")
        for i, d in enumerate(self.context):
            if d.answer != d.original_answer:
                _fail(f"context.{i}.answer", "an 'icl' demonstration shows its original answer")
        if self.chosen != self.query.answer:
            _fail("chosen", "must be the query's answer in an 'icl' record")
        if self.rejected_type != "wrong_answer":
            _fail("rejected_type", "must be 'wrong_answer' in an 'icl' record")
        if self.rejected not in {d.answer for d in self.context}:
            _fail("rejected", "must be the answer of a demonstration")

    def _check_symbol(self) -> None:
        """Symbol demonstrations: the chosen symbol is the one of a demonstration with the query's answer."""
        if self.rejected_type == "wrong_answer":
            _fail("rejected_type", "'wrong_answer' is for 'icl' records")
        for i, d in enumerate(self.context):
            if self.symbols.get(d.original_answer) != d.answer:
                _fail(f"context.{i}.answer", "must be the symbol of the demonstration's original answer")
        values = list(self.symbols.values())
        if len(set(values)) != len(values):
            _fail("symbols", "two answers share a symbol")
        if set(self.symbols) != {d.original_answer for d in self.context}:
            _fail("symbols", "must map exactly the demonstrations' answers")
        forbidden = {d.original_answer.lower() for d in self.context} | {a.lower() for a in self.query.answers}
        for q in {d.question for d in self.context} | {self.query.question}:
            forbidden |= _question_words(q or "")
        for s in values:
            if s.lower() in forbidden:
                _fail("symbols", f"symbol {s!r} collides with an answer or a question word")
        if self.query.answer not in self.symbols:
            _fail("query.answer", "no demonstration has the query's answer")
        if self.chosen != self.symbols[self.query.answer]:
            _fail("chosen", "must be the symbol of the query's answer")
        if self.rejected_type == "text" and self.rejected != self.query.answer:
            _fail("rejected", "a 'text' rejection is the query's answer in words")
        if self.rejected_type == "wrong_symbol" and self.rejected not in values:
            _fail("rejected", "a 'wrong_symbol' rejection must be the symbol of another answer")


class SFTRecord(_Sequence):
    """A supervised sequence: demonstrations, a query, and the target answer."""

    kind: Literal["vqa", "caption", "symbol", "copy"]  # copy: the target repeats a demonstration's text
    target: str

    @model_validator(mode="after")
    def _invariants(self) -> SFTRecord:
        self._check_images()
        is_caption = self.kind in ("caption", "copy")
        for i, d in enumerate([*self.context, self.query]):
            if (d.question is None) != is_caption:
                where = f"context.{i}" if i < len(self.context) else "query"
                _fail(f"{where}.question", "captions have no question; VQA items need one")
        if self.kind != "symbol" and any(d.answer != d.original_answer for d in self.context):
            _fail("context", "only 'symbol' sequences replace answers")
        if self.kind == "copy" and self.target not in {d.answer for d in self.context}:
            _fail("target", "a 'copy' sequence repeats the text of one of its demonstrations")
        return self


Record = PreferenceRecord | SFTRecord


def _segment(formats: Mapping[str, PromptFormat], question: str | None, answer: str | None, end: str,
             images: int = 1) -> str:
    """Return one demonstration (or, without ``answer``, the open query) in the caption or VQA format, with
    ``images`` image markers where the format puts the image."""
    fmt = formats["caption" if question is None else "vqa"]
    fields = {"caption": answer} if question is None else {"question": question, "answer": answer}
    return fill(fmt, fmt.query if answer is None else fmt.demo, {k: v for k, v in fields.items() if v is not None},
                images=images, end=end)


Turn = tuple[str | None, str | None, int]  # (question or None for a caption, answer shown or None, images)


def render_turns(formats: Mapping[str, PromptFormat], turns: list[Turn], *, end_of_chunk: str = END_OF_CHUNK) -> str:
    """Return the prompt (with image markers) of demonstration turns and the query turn (the last, answer None).

    Demonstrations are joined directly, each closed by its end marker (as the SymDPO reference data); the
    query's kind (caption or VQA) chooses the prefix.
    """
    *demos, query = [_segment(formats, q, a, end_of_chunk, n) for q, a, n in turns]
    return join_prompt(formats["caption" if turns[-1][0] is None else "vqa"], demos, query, separator="")


def render_record(record: Record, formats: Mapping[str, PromptFormat], *, end_of_chunk: str = END_OF_CHUNK,
                  answer_end: bool = True) -> tuple[str, list[str], str, str | None]:
    """Return (prompt with image markers, image paths, chosen, rejected) written in ``formats`` (kind -> format).

    Answers end with ``end_of_chunk`` (``answer_end``) because evaluation stops there; an SFT record returns
    its target as ``chosen`` and None as ``rejected``.
    """
    turns = [(d.question, d.answer, 1) for d in record.context] + [(record.query.question, None, 1)]
    text = render_turns(formats, turns, end_of_chunk=end_of_chunk)
    tail = end_of_chunk if answer_end else ""
    if isinstance(record, PreferenceRecord):
        return text, list(record.images), record.chosen + tail, record.rejected + tail
    return text, list(record.images), record.target + tail, None


def render_openflamingo(record: Record, *, end_of_chunk: str = END_OF_CHUNK,
                        answer_end: bool = True) -> tuple[str, list[str], str, str | None]:
    """Return (prompt with <image> tags, image paths, chosen, rejected) in OpenFlamingo's eval templates."""
    return render_record(record, OPENFLAMINGO, end_of_chunk=end_of_chunk, answer_end=answer_end)
