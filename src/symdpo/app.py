"""``symdpo app``: a local web app (Gradio) comparing models on your own demonstrations.

Add a few demonstrations (image + question + answer, or image + caption) and a query; pick one or two models
(presets or saved folders). For each model the page shows its answer, its score for every demonstration
answer as the query's answer (mean log-probability per token: with symbol answers, the symbol scores of a
SymDPO context), and the same again with the demonstration images blanked (does it use them?). The
comparison can be saved as a PNG. Nothing is downloaded for the tiny presets: it runs offline.

The comparison itself (`compare`, `markdown`, `figure`) is plain Python; `build` only lays it out. Every
problem with the input (a missing query image, a file that is no image, an unknown model) comes back as a
message on the page, never as a stack trace.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("symdpo.app")

SLOTS = 4  # demonstration rows on the page
DEFAULT_MODELS = ("tiny-easyvqa", "tiny")  # offline presets: the demo's starting model, a random one
CONDITIONS = ("real", "blank")  # demonstration images as given, then blanked


@dataclass
class Row:
    """One model's answer under one condition, with its score for each demonstration answer."""

    model: str
    condition: str
    answer: str
    scores: dict[str, float] = field(default_factory=dict)


class Models:
    """Loads each named model once (a preset or a saved folder)."""

    def __init__(self) -> None:
        self.loaded: dict[str, Any] = {}

    def get(self, name: str):
        """Return the Predictor of ``name``; a ValueError with a one-line message when it cannot load."""
        from symdpo.infer import load
        from symdpo.models.errors import ModelError

        name = name.strip()
        if name not in self.loaded:
            try:
                self.loaded[name] = load(name)
            except (ModelError, OSError, ValueError) as e:
                raise ValueError(f"model {name!r}: {str(e).splitlines()[0]}") from None
        return self.loaded[name]


def check_inputs(task: str, demos: Sequence[tuple], query: tuple) -> tuple[list[tuple], tuple]:
    """Return the demonstrations and query with images opened; a ValueError naming the first problem."""
    from symdpo.infer import InferenceError, open_image

    def image(value, what: str):
        if value is None or value == "":
            raise ValueError(f"{what} needs an image")
        try:
            return open_image(value)
        except InferenceError:
            raise ValueError(f"{what}: {Path(str(value)).name} is not an image file (JPEG, PNG, ...)") from None

    opened = []
    for i, demo in enumerate(demos, 1):
        texts = [t.strip() for t in demo[1:]]
        if not any(texts) and demo[0] in (None, ""):
            continue  # an empty row
        if not all(texts):
            need = "a question and an answer" if task == "vqa" else "a caption"
            raise ValueError(f"demonstration {i} needs {need}")
        opened.append((image(demo[0], f"demonstration {i}"), *texts))
    if not opened:
        raise ValueError("add at least one demonstration (an image and its " +
                         ("question and answer)" if task == "vqa" else "caption)"))
    q_image = image(query[0], "the query")
    if task == "vqa" and not (query[1] or "").strip():
        raise ValueError("the query needs a question")
    return opened, ((q_image, query[1].strip()) if task == "vqa" else (q_image,))


def compare(predictors: dict[str, Any], task: str, demos: list[tuple], query: tuple) -> list[Row]:
    """Return each model's answer and answer scores with the demonstrations' images real, then blank."""
    import torch

    from symdpo.eval.images import blank_image

    candidates = list(dict.fromkeys(d[-1] for d in demos))  # the demonstration answers / captions
    rows = []
    for name, predictor in predictors.items():
        for condition in CONDITIONS:
            shown = demos if condition == "real" else [(blank_image(), *d[1:]) for d in demos]
            answer = predictor.answer(shown, query if task == "vqa" else query[0], task=task)
            context = predictor.context(shown, query if task == "vqa" else query[0], task)
            model = predictor.model
            with torch.no_grad():
                logps, counts = model.answer_logps([context] * len(candidates),
                                                   [c + model.end_of_chunk for c in candidates])
            scores = {c: lp / max(n, 1) for c, lp, n in zip(candidates, logps.tolist(), counts.tolist(), strict=True)}
            rows.append(Row(name, condition, answer, scores))
    return rows


def markdown(rows: list[Row]) -> str:
    """Return the comparison as a Markdown table (answers, and the best-scored demonstration answer)."""
    lines = ["| model | demonstration images | answer | best-scored demonstration answer | scores |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        best = max(r.scores, key=r.scores.__getitem__) if r.scores else ""
        scores = ", ".join(f"{c}: {s:.2f}" for c, s in r.scores.items())
        lines.append(f"| {r.model} | {r.condition} | {r.answer or '(empty)'} | {best} | {scores} |")
    return "\n".join(lines)


def figure(demos: list[tuple], query: tuple, rows: list[Row], path: str | Path) -> Path:
    """Write the comparison (demonstrations, query, every model's answers) as a PNG at ``path``; return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(demos) + 1
    fig = plt.figure(figsize=(2.4 * n, 2.4 + 0.35 * len(rows) + 0.6))
    for i, item in enumerate([*demos, query]):
        ax = fig.add_axes((i / n + 0.01, 0.45, 1 / n - 0.02, 0.5))
        ax.imshow(item[0])
        ax.set_axis_off()
        label = " → ".join(item[1:]) if i < len(demos) else ("query: " + " ".join(item[1:]) + " → ?")
        ax.set_title(label, fontsize=8, wrap=True)
    text = "\n".join(f"{r.model} ({r.condition} demonstration images): {r.answer or '(empty)'}" for r in rows)
    fig.text(0.02, 0.05, text, fontsize=9, va="bottom", family="monospace")
    from symdpo.atomic import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def run_comparison(models: Models, task: str, model_a: str, model_b: str, demos: Sequence[tuple],
                   query: tuple, png_dir: str | Path) -> tuple[str, str | None]:
    """Return (the page's Markdown, the PNG's path) of one comparison; problems come back as the Markdown."""
    try:
        names = [n.strip() for n in (model_a, model_b) if n and n.strip()]
        if not names:
            raise ValueError("pick at least one model")
        shown, q = check_inputs(task, demos, query)
        predictors = {n: models.get(n) for n in dict.fromkeys(names)}
        rows = compare(predictors, task, shown, q)
        png = figure(shown, q, rows, Path(png_dir) / f"comparison-{uuid.uuid4().hex[:12]}.png")
        return markdown(rows), str(png)
    except ValueError as e:
        return f"**Cannot compare:** {e}", None
    except Exception as e:  # an unexpected failure: a message on the page, the traceback in the console only
        log.exception("comparison failed")
        return f"**Something went wrong:** {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", None


def build(default_models: Sequence[str] = DEFAULT_MODELS, png_dir: str | Path | None = None):
    """Return the Gradio Blocks of the app."""
    import tempfile

    import gradio as gr

    models = Models()
    png_dir = Path(png_dir or tempfile.mkdtemp(prefix="symdpo-app-"))
    choices = list(dict.fromkeys(default_models))
    with gr.Blocks(title="symdpo: compare models on your demonstrations") as ui:
        gr.Markdown("# Does the model use its demonstration images?\nAdd demonstrations and a query, pick models, "
                    "compare. Each answer is shown again with the demonstration images blanked.")
        with gr.Row():
            task = gr.Radio(["vqa", "caption"], value="vqa", label="task", elem_id="task")
            model_a = gr.Dropdown(choices, value=choices[0], allow_custom_value=True, label="model A (preset or folder)",
                                  elem_id="model-a")
            model_b = gr.Dropdown(choices, value=choices[1] if len(choices) > 1 else None, allow_custom_value=True,
                                  label="model B (optional)", elem_id="model-b")
        slots = []
        for i in range(1, SLOTS + 1):
            with gr.Row():
                slots.append((gr.File(label=f"demonstration {i}: image", type="filepath", elem_id=f"demo-image-{i}"),
                              gr.Textbox(label="question (VQA)", elem_id=f"demo-question-{i}"),
                              gr.Textbox(label="answer or caption", elem_id=f"demo-answer-{i}")))
        with gr.Row():
            q_image = gr.File(label="query image", type="filepath", elem_id="query-image")
            q_question = gr.Textbox(label="query question (VQA)", elem_id="query-question")
        go = gr.Button("Compare", variant="primary", elem_id="compare")
        result = gr.Markdown(elem_id="result")
        png = gr.File(label="comparison as PNG", elem_id="png")

        def on_compare(task_v, a, b, *values):
            rows = [values[3 * k:3 * k + 3] for k in range(SLOTS)]
            demos = [(img, q, ans) if task_v == "vqa" else (img, ans) for img, q, ans in
                     ((r[0], r[1] or "", r[2] or "") for r in rows)]
            return run_comparison(models, task_v, a or "", b or "", demos, (values[-2], values[-1] or ""), png_dir)

        go.click(on_compare, [task, model_a, model_b, *[c for s in slots for c in s], q_image, q_question],
                 [result, png])
    return ui


def launch(*, host: str = "127.0.0.1", port: int = 7860, models: Sequence[str] = DEFAULT_MODELS) -> None:
    """Start the app and serve it until interrupted."""
    build(models).launch(server_name=host, server_port=port, show_error=False, quiet=True)
