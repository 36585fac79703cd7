"""Prompt formats: how a model family writes one demonstration and the query (torch-free).

A format uses ``{image}`` for the image marker (turned into an image item by ``to_interleaved``; the model
writes its own image tokens there), ``{end}`` for the end-of-answer text, and the task fields
``{question}``, ``{answer}``, ``{caption}``. A demonstration is its query followed directly by ``{answer}``: a
chat format whose template writes a space before the answer (``Assistant: red``) ends its query with that space.
The model reads a context the way lm-evaluation-harness does: the context's trailing spaces move to the answer
(``continuation``), which is tokenized after its context, so the ids scored are the ones the model sees inside
the full conversation, and generation starts after the cue (``Assistant:``, the template's generation prompt).
OpenFlamingo's cue (``Short answer:``) ends in no space, so nothing moves for it.

Styles: ``openflamingo`` is OpenFlamingo's evaluation wording (``open_flamingo/eval/models/open_flamingo.py``,
``get_vqa_prompt`` / ``get_caption_prompt``), the one the SymDPO paper evaluated OpenFlamingo and base IDEFICS
with; ``native`` is the family's own (its chat format, for instruct models). A family without a native
format of its own (OpenFlamingo) answers ``native`` with OpenFlamingo's.

A demonstration ends with ``{end}`` (plus the newlines a chat template writes after a turn): that is where
a too-long context is cut, whole demonstrations from the front, the ``prefix`` kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

Kind = Literal["vqa", "caption"]
Style = Literal["native", "openflamingo"]
STYLES: tuple[str, ...] = get_args(Style)
KINDS: tuple[str, ...] = get_args(Kind)

# the model-agnostic end-of-answer marker records and OpenFlamingo's prompts write; a family writes its own
AGNOSTIC_END = "<|endofchunk|>"
IMAGE_MARKER = "<image>"


@dataclass(frozen=True)
class PromptFormat:
    """How one demonstration and the query are written, and what marks an image and ends a chunk."""

    demo: str
    query: str
    image_marker: str = IMAGE_MARKER
    end_of_chunk: str = AGNOSTIC_END
    separator: str = "\n"  # written after every demonstration in evaluation (OpenFlamingo's join)
    prefix: str = ""  # written once before the first demonstration (a chat model's system turn)

    def to_dict(self) -> dict[str, str]:
        """Return the format as a JSON-ready dict (saved with a model)."""
        return asdict(self)


OPENFLAMINGO: dict[str, PromptFormat] = {
    "vqa": PromptFormat(demo="{image}Question:{question} Short answer:{answer}{end}",
                        query="{image}Question:{question} Short answer:"),
    "caption": PromptFormat(demo="{image}Output:{caption}{end}", query="{image}Output:"),
}


def fill(fmt: PromptFormat, template: str, fields: Mapping[str, str], *, images: int = 1, end: str | None = None) -> str:
    """Return ``template`` (``fmt.demo`` or ``fmt.query``) with ``images`` image markers back to back, the end text
    (``end``, or the format's own) and the fields; a missing field is named in the KeyError."""
    try:
        return template.format(image=fmt.image_marker * images, end=fmt.end_of_chunk if end is None else end, **fields)
    except KeyError as err:
        raise KeyError(f"prompt format {template!r} needs field {err.args[0]!r}; item has {sorted(fields)}") from None


def join_prompt(fmt: PromptFormat, demos: Sequence[str], query: str, *, separator: str, demo_images: bool = True,
                query_image: bool = True) -> str:
    """Return ``fmt.prefix``, each written demonstration followed by ``separator``, then the written query.

    Evaluation writes ``fmt.separator`` (OpenFlamingo's ``"\n"`` join); training records write ``""`` (the
    SymDPO reference data). ``demo_images=False`` removes every image marker from the demonstrations' text, as
    OpenFlamingo's text-only 0-shot demonstrations do (a plain replace); ``query_image=False`` from the query's.
    """
    context = "".join(d + separator for d in demos)
    if not demo_images:
        context = context.replace(fmt.image_marker, "")
    if not query_image:
        query = query.replace(fmt.image_marker, "")
    return fmt.prefix + context + query


def to_interleaved(text: str, images: Sequence[Any], image_marker: str = IMAGE_MARKER) -> list:
    """Return the model-interface context (``interface.Context``): ``text`` split at each marker, images between,
    empty text dropped."""
    pieces = text.split(image_marker)
    if len(pieces) - 1 != len(images):
        raise ValueError(f"prompt has {len(pieces) - 1} {image_marker!r} markers but {len(images)} images were given")
    out: list = []
    for i, piece in enumerate(pieces):
        if piece:
            out.append(piece)
        if i < len(images):
            out.append(images[i])
    return out


def move_trailing_spaces(context_text: str) -> tuple[str, str]:
    """Return (the text without its trailing spaces, those spaces): what the model reads, and the answer's start.

    Only spaces move (lm-evaluation-harness moves all whitespace): a newline ends a chat role header
    (``<|im_start|>assistant\\n``), which the templates' generation prompts include.
    """
    kept = context_text.rstrip(" ")
    return kept, context_text[len(kept):]


def check_style(style: str) -> str:
    """Return ``style`` when it is a known prompt style; raise ValueError naming the known ones otherwise."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(STYLES)}")
    return style


def check_kind(kind: str) -> str:
    """Return ``kind`` when it is a task kind with prompts (vqa, caption); raise ValueError otherwise."""
    if kind not in KINDS:
        raise ValueError(f"no prompt format for task kind {kind!r}; kinds: {', '.join(KINDS)}")
    return kind
