"""A run's figures: the score-against-shots curve of each task (shots_<task>.png) and the drops (drops.png).

matplotlib is imported inside the functions (headless Agg backend): the CLI starts without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from symdpo.atomic import write_bytes
from symdpo.eval.report.cells import condition_label, condition_of, metric_axis
from symdpo.eval.report.stats import drop_label, drops


def _pyplot():
    """Return matplotlib.pyplot on the headless Agg backend (no display on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrapped(model: str, width: int) -> str:
    """Return the model name wrapped to ``width`` characters per line for a title ("?" when empty)."""
    import textwrap

    return "\n".join(textwrap.wrap(str(model), width, break_on_hyphens=False)) or "?"


# --- score against shots ----------------------------------------------------------------------------------------


def shot_curve_figure(task: str, cells: Sequence[dict[str, Any]], model: str):
    """Return the matplotlib Figure of one task's score against shots, a line per image condition."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    conds = list(dict.fromkeys(condition_of(c) for c in cells))  # a line per condition, whatever its fields
    for cond in conds:
        line = sorted((c for c in cells if condition_of(c) == cond), key=lambda c: c["shots"])
        several = any(len(c.get("trials", ())) > 1 for c in line)  # std over trials; none for one trial
        ax.errorbar([c["shots"] for c in line], [c["mean"] for c in line],
                    yerr=[c.get("std", 0.0) for c in line] if several else None,
                    marker="o", capsize=3, label=condition_label(cond) if cond else "all real")
    label, top = metric_axis(cells[0]["metric"])
    ax.set_xticks(sorted({c["shots"] for c in cells}))
    ax.set_xlabel("shots (in-context demonstrations)")
    ax.set_ylabel(label)
    if top is not None:
        ax.set_ylim(0, top)
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(f"{task}\n{_wrapped(model, 55)}", fontsize=10)
    if len(conds) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(run_dir: Path, results: dict[str, Any]) -> list[Path]:
    """Write one shot-curve PNG per task (see ``shot_curve_figure``); return the paths."""
    paths = []
    for task in dict.fromkeys(c["task"] for c in results["results"]):
        cells = [c for c in results["results"] if c["task"] == task]
        fig = shot_curve_figure(task, cells, results["config"]["model"])
        path = run_dir / f"shots_{task}.png"
        fig.savefig(path, dpi=100)
        _pyplot().close(fig)
        paths.append(path)
    return paths


# --- the visual-reliance drops ----------------------------------------------------------------------------------


def _metric_name(metric: str) -> tuple[str, str]:
    """Return a metric's name for an axis label and the unit of a difference of it ("percentage points", "points")."""
    label, top = metric_axis(metric)
    return label.removesuffix(" (%)"), "percentage points" if top == 100.0 else "points"


def _drops_axes(ax, rows: Sequence[dict[str, Any]], colors: dict[str, str]) -> bool:
    """Draw one task's drops on ``ax``, a bar per altered condition grouped by shots; return whether any has a spread."""
    shots = sorted({r["shots"] for r in rows})
    labels = list(dict.fromkeys(drop_label(r) for r in rows))
    width = 0.8 / len(labels)
    bars = False
    for j, label in enumerate(labels):
        at = {r["shots"]: r for r in rows if drop_label(r) == label}
        here = [s for s in shots if s in at]
        several = any(at[s]["trials"] > 1 for s in here)  # error bars only where there is a spread
        bars |= several
        ax.bar([shots.index(s) + (j - (len(labels) - 1) / 2) * width for s in here],
               [at[s]["drop"] for s in here], width, yerr=[at[s]["drop_std"] for s in here] if several else None,
               capsize=3, color=colors[label], label=label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(shots)), [str(s) for s in shots])
    ax.set_xlabel("shots (in-context demonstrations)")
    name, unit = _metric_name(rows[0]["metric"])
    ax.set_ylabel(f"drop in {name} ({unit})")
    ax.set_title(rows[0]["task"], fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return bars


def drops_figure(rows: Sequence[dict[str, Any]], model: str):
    """Return the matplotlib Figure of the drops: per task, a bar per altered condition grouped by shots."""
    plt = _pyplot()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    ncols = min(len(tasks), 3)
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    colors = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(drop_label(r) for r in rows))}
    bars = False
    for ax, task in zip(axes.flat, tasks, strict=False):
        bars |= _drops_axes(ax, [r for r in rows if r["task"] == task], colors)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    note = "\nerror bars: std over trials of the drop (per-seed pairs)" if bars else ""
    fig.suptitle(f"Visual reliance: score with the condition real minus altered\n{_wrapped(model, 55 * ncols)}{note}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_drops(run_dir: Path, results: dict[str, Any]) -> Path | None:
    """Write drops.png (see ``drops_figure``) atomically when the run has altered conditions; return its path."""
    rows = drops(results["results"])
    if not rows:
        return None
    import io

    fig = drops_figure(rows, results["config"]["model"])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _pyplot().close(fig)
    return write_bytes(Path(run_dir) / "drops.png", buf.getvalue())
