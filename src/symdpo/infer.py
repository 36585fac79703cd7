"""Inference on your own demonstrations: ``symdpo.load(model).answer(demos, query)``.

A demonstration is (image, text) — the answer for VQA, the caption for captioning — and the query is
(image, question) for VQA or an image for captioning. The context is written in the model's prompt format
(``prompt_style``: its own by default, or OpenFlamingo's), the one evaluation uses, so a model answers exactly
as it is evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from symdpo.errors import SymdpoError
from symdpo.eval.postprocess import postprocess_caption, postprocess_vqa
from symdpo.eval.prompts import PromptItem, render_context
from symdpo.eval.registry import DECODING
from symdpo.models.prompts import Kind, to_interleaved


class InferenceError(SymdpoError):
    """A request that cannot be answered as given (missing image, missing question, …)."""


def open_image(image: Any) -> Image.Image:
    """Return an RGB PIL image from a PIL image or a path, validated."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from symdpo.data.errors import DataError
    from symdpo.data.images import load_image

    path = Path(image)
    try:
        return load_image(path.parent, path.name, strict_extension=False)
    except DataError as e:
        raise InferenceError(f"{path}: {e}") from None


class Predictor:
    """A loaded model with the few-shot templates: ``answer(demos, query)``."""

    def __init__(self, model, *, prompt_style: str | None = None):
        self.model = model
        self.prompt_style = prompt_style  # None: the model's default

    def context(self, demos: Sequence[tuple[Any, str]], query: Any, task: Kind = "vqa"):
        """Return the interleaved context for ``demos`` and ``query`` under the task's template."""
        if task == "vqa":
            if not isinstance(query, tuple) or len(query) != 2 or not query[1]:
                raise InferenceError("a VQA query needs an image and a question")
            items = []
            for i, demo in enumerate(demos):
                if len(demo) != 3:
                    raise InferenceError(f"VQA demonstration {i + 1} needs (image, question, answer)")
                items.append(PromptItem(open_image(demo[0]), {"question": demo[1], "answer": demo[2]}))
            q = PromptItem(open_image(query[0]), {"question": query[1]})
        else:
            items = [PromptItem(open_image(d[0]), {"caption": d[1]}) for d in demos]
            q = PromptItem(open_image(query[0] if isinstance(query, tuple) else query))
        template = self.model.prompt_format(task, self.prompt_style)
        text, images = render_context(template, items, q)
        return to_interleaved(text, images, template.image_marker)

    def answer(self, demos: Sequence[tuple], query: Any, task: Kind = "vqa", **decoding) -> str:
        """Return the model's answer (post-processed as in evaluation) to ``query`` given ``demos``."""
        ctx = self.context(demos, query, task)
        out = self.model.generate([ctx], **{**asdict(DECODING[task]), **decoding})[0]
        return postprocess_vqa(out) if task == "vqa" else postprocess_caption(out)


def load(name_or_path: str | Path, *, prompt_style: str | None = None, **kwargs) -> Predictor:
    """Return a Predictor for a preset name or a saved model directory (``prompt_style``: native or openflamingo)."""
    from symdpo.models.registry import load_model

    return Predictor(load_model(name_or_path, **kwargs), prompt_style=prompt_style)
