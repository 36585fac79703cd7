"""Prompt templates and context rendering, as in OpenFlamingo's evaluation (open_flamingo/eval/evaluate.py).

The reference builds a context as ``"".join(demo_prompt + "\\n" for demo in demos) + query_prompt``; in the
0-shot case it uses two demonstrations and removes every ``<image>`` from the demonstration text (so the
demos are text-only and carry no image), while the query keeps its image. Prompts come from
``open_flamingo/eval/models/open_flamingo.py`` (``get_vqa_prompt``, ``get_caption_prompt``).

Each model family gives its own format (``model.prompt_format(kind, style)``, ``models/prompts.py``); the
OpenFlamingo wording lives there too. Formats use ``{image}`` for the image marker and ``{end}`` for the
end-of-chunk text, plus task fields (``question``, ``answer``, ``caption``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from symdpo.models.prompts import OPENFLAMINGO, PromptFormat, fill, join_prompt

PromptTemplate = PromptFormat  # the eval's name for a family's prompt format


@dataclass(frozen=True)
class PromptItem:
    """One demonstration or query: its image (any object, or None) and the fields its format needs."""

    image: Any
    fields: Mapping[str, str] = field(default_factory=dict)


VQA_TEMPLATE = OPENFLAMINGO["vqa"]
CAPTION_TEMPLATE = OPENFLAMINGO["caption"]

# Following Flamingo, OpenFlamingo's 0-shot evaluation still shows this many text-only demonstrations.
ZERO_SHOT_TEXT_DEMOS = 2


def effective_num_shots(num_shots: int, *, text_only_zero_shot: bool = True) -> int:
    """Return how many demonstrations to sample: ``num_shots``, or 2 for OpenFlamingo-style 0-shot."""
    if num_shots < 0:
        raise ValueError(f"num_shots must be >= 0, got {num_shots}")
    return ZERO_SHOT_TEXT_DEMOS if num_shots == 0 and text_only_zero_shot else num_shots


def _images(item: PromptItem) -> list[Any]:
    """Return the item's images: a tuple holds several (a multi-image record), anything else is one."""
    return list(item.image) if isinstance(item.image, tuple) else [item.image]


def render_context(
    template: PromptTemplate,
    demos: Sequence[PromptItem],
    query: PromptItem,
    *,
    text_only_demos: bool = False,
    query_has_image: bool = True,
) -> tuple[str, list[Any]]:
    """Return the prompt text and its images in marker order; ``text_only_demos`` gives the 0-shot form.

    ``query_has_image=False`` removes the query's image marker too (the no-query-image diagnostic).
    """
    demo_texts = [fill(template, template.demo, d.fields, images=len(_images(d))) for d in demos]
    query_text = fill(template, template.query, query.fields, images=len(_images(query)))
    text = join_prompt(template, demo_texts, query_text, separator=template.separator,
                       demo_images=not text_only_demos, query_image=query_has_image)
    images = [] if text_only_demos else [im for d in demos for im in _images(d)]
    return text, images + (_images(query) if query_has_image else [])
