"""Prompt formats: how a model family writes one demonstration and the query (torch-free).

A format uses ``{image}`` for the image marker (turned into an image item by ``eval.prompts.to_interleaved``;
the model writes its own image tokens there), ``{end}`` for the end-of-answer text, and the task fields
``{question}``, ``{answer}``, ``{caption}``. As in the OpenFlamingo prompts, no space is written between the
cue and ``{answer}``: answers are tokenized alone, so demonstrations and scored answers agree.

Styles: ``openflamingo`` is OpenFlamingo's evaluation wording (``open_flamingo/eval/models/open_flamingo.py``,
``get_vqa_prompt`` / ``get_caption_prompt``), the one the SymDPO paper evaluated OpenFlamingo and base IDEFICS
with; ``native`` is the family's own (its chat format, for instruct models). A family without a native
format of its own (OpenFlamingo) answers ``native`` with OpenFlamingo's.

A demonstration ends with ``{end}`` (plus the newlines a chat template writes after a turn): that is where
a too-long context is cut, whole demonstrations from the front, the ``prefix`` kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Kind = Literal["vqa", "caption"]
Style = Literal["native", "openflamingo"]
STYLES: tuple[str, ...] = ("native", "openflamingo")
KINDS: tuple[str, ...] = ("vqa", "caption")

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
