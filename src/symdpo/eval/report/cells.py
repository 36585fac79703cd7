"""A result cell (one task, shot count and condition, scored over trials): its identity and how it reads.

A cell is a dict of results.json: task, shots, metric, n (evaluated items), trials ([{seed, score}]), mean,
std, by_type, and one field per image or label condition (demo_images, query_image, ...) whose unaltered value
is "real".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# cell fields that are not a condition; every other field of a cell (demo_images, query_image, ...) is one
STAT_FIELDS = frozenset({"task", "shots", "metric", "n", "trials", "mean", "std", "by_type"})
BASELINE = "real"  # the unaltered value of every condition field

# metric name -> (axis label, top of its scale or None); every score is stored x100 (percent, CIDEr-D x 100)
METRIC_AXES = {"vqa_accuracy": ("VQA accuracy (%)", 100.0), "symbol_accuracy": ("symbol accuracy (%)", 100.0),
               "cider": ("CIDEr", None), "vlicl-parity": ("accuracy, VL-ICL's rules (%)", 100.0)}


def condition_fields(cells: Sequence[dict[str, Any]]) -> list[str]:
    """Return the condition fields of ``cells`` (demo_images, query_image, ...), in first-seen order."""
    return list(dict.fromkeys(k for c in cells for k in c if k not in STAT_FIELDS))


def condition_of(cell: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Return the cell's altered condition fields as sorted (field, value) pairs; () when every one is real."""
    return tuple(sorted((k, v) for k, v in cell.items() if k not in STAT_FIELDS and v != BASELINE))


def condition_label(condition: Sequence[tuple[str, Any]]) -> str:
    """Return a readable name of a condition: "real", or e.g. "demo images blank, query image blank"."""
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in condition) or BASELINE


def cell_key(cell: dict[str, Any]) -> tuple[str, int, tuple[tuple[str, Any], ...]]:
    """Return (task, shots, altered condition fields): a cell's identity, whichever condition fields a run has."""
    return cell["task"], cell["shots"], condition_of(cell)


def seed_scores(cell: dict[str, Any]) -> dict[Any, float]:
    """Return the cell's {trial seed: score} ({} when two trials share a seed: nothing to pair them by)."""
    scores = {t["seed"]: t["score"] for t in cell["trials"]}
    return scores if len(scores) == len(cell["trials"]) else {}


def metric_axis(metric: str) -> tuple[str, float | None]:
    """Return a metric's axis label and the top of its scale (None: unbounded), as ``METRIC_AXES`` names them."""
    return METRIC_AXES.get(metric, (metric, 100.0 if metric.startswith("vlicl") else None))
