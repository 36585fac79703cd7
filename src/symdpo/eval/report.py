"""Report files of a run (results.json, results.md, shot-curve PNGs) and the side-by-side comparison."""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from symdpo.atomic import write_text

PACKAGES = ("symdpo", "torch", "transformers", "accelerate", "numpy", "pycocoevalcap", "easy-vqa")


def provenance() -> dict[str, Any]:
    """Return {"versions": {package: version}, "git_revision": commit (+ "-dirty") or None}."""
    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"versions": versions, "git_revision": git_revision()}


def git_revision(where: Path | None = None) -> str | None:
    """Return the commit of the symdpo checkout (with "-dirty" for local changes), or None outside git."""
    cwd = where or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def visual_reliance(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return, per task/shots/query condition with shots > 0, the real- and blank-demo scores and the drop."""
    by = {(c["task"], c["shots"], c["demo_images"], c["query_image"]): c for c in cells}
    out = []
    for (task, shots, demo, query), real in by.items():
        blank = by.get((task, shots, "blank", query))
        if demo != "real" or shots == 0 or blank is None:
            continue  # 0-shot demonstrations are text-only: nothing to blank
        out.append({"task": task, "shots": shots, "query_image": query, "real": real["mean"],
                    "blank": blank["mean"], "drop": real["mean"] - blank["mean"]})
    return out


def fmt_score(cell: dict[str, Any]) -> str:
    """Return "mean ± std" with two decimals (the std only when there are several trials)."""
    if len(cell["trials"]) > 1:
        return f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    return f"{cell['mean']:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """Return the markdown report: provenance, the score table, and the visual-reliance table."""
    cfg = results["config"]
    lines = [f"# Evaluation of {cfg['model']}", "",
             f"- demos: {cfg['demo_selection']}, query set {cfg['query_set_size']}, trials {cfg['trials']} "
             f"(seeds from {cfg['seed']}), eval items {cfg['num_samples'] or 'all'}",
             f"- git {results.get('git_revision')}; CIDEr tokenizer: {results.get('cider_tokenizer') or 'n/a'}", "",
             "| task | shots | demo images | query image | metric | score | n |", "|---|---|---|---|---|---|---|"]
    for c in results["results"]:
        lines.append(f"| {c['task']} | {c['shots']} | {c['demo_images']} | {c['query_image']} | {c['metric']} | "
                     f"{fmt_score(c)} | {c['n']} |")
    if results["visual_reliance"]:
        lines += ["", "## Visual reliance (score with real demo images vs blank ones)", "",
                  "| task | shots | query image | real | blank | drop |", "|---|---|---|---|---|---|"]
        for r in results["visual_reliance"]:
            lines.append(f"| {r['task']} | {r['shots']} | {r['query_image']} | {r['real']:.2f} | {r['blank']:.2f} | "
                         f"{r['drop']:+.2f} |")
    return "\n".join(lines) + "\n"


# metric name -> (axis label, top of its scale or None); every score is stored x100 (percent, CIDEr-D x 100)
METRIC_AXES = {"vqa_accuracy": ("VQA accuracy (%)", 100.0), "symbol_accuracy": ("symbol accuracy (%)", 100.0),
               "cider": ("CIDEr", None)}


def shot_curve_figure(task: str, cells: Sequence[dict[str, Any]], model: str):
    """Return the matplotlib Figure of one task's score against shots, a line per image condition."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    conds = list(dict.fromkeys((c["demo_images"], c["query_image"]) for c in cells))
    for cond in conds:
        line = sorted((c for c in cells if (c["demo_images"], c["query_image"]) == cond), key=lambda c: c["shots"])
        several = any(len(c.get("trials", ())) > 1 for c in line)  # std over trials; none for one trial
        ax.errorbar([c["shots"] for c in line], [c["mean"] for c in line],
                    yerr=[c.get("std", 0.0) for c in line] if several else None,
                    marker="o", capsize=3, label=f"demo images {cond[0]}, query image {cond[1]}")
    metric = cells[0]["metric"]
    label, top = METRIC_AXES.get(metric, (metric, None))
    ax.set_xticks(sorted({c["shots"] for c in cells}))
    ax.set_xlabel("shots (in-context demonstrations)")
    ax.set_ylabel(label)
    if top is not None:
        ax.set_ylim(0, top)
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    name = "\n".join(textwrap.wrap(str(model), 55, break_on_hyphens=False)) or "?"
    ax.set_title(f"{task}\n{name}", fontsize=10)
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
        import matplotlib.pyplot as plt  # after shot_curve_figure chose the headless backend
        path = run_dir / f"shots_{task}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write_reports(run_dir: Path, results: dict[str, Any]) -> None:
    """Write results.json, results.md and the shot-curve PNGs into ``run_dir``."""
    write_text(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    write_text(run_dir / "results.md", markdown(results))
    plot_curves(run_dir, results)


def _cells(run: Path) -> dict[tuple, dict[str, Any]]:
    """Return a run's result cells by (task, shots, demo images, query image)."""
    path = Path(run) / "results.json"
    if not path.exists():
        from symdpo.eval.errors import EvalError

        raise EvalError(f"{run}: no results.json (run or merge it first)")
    data = json.loads(path.read_text())
    return {(c["task"], c["shots"], c["demo_images"], c["query_image"]): c for c in data["results"]}


def compare(run_a: str | Path, run_b: str | Path, *, console: Any = None) -> list[dict[str, Any]]:
    """Print a side-by-side table of two runs' scores with B - A deltas; return its rows."""
    from rich.console import Console
    from rich.table import Table

    a, b = _cells(Path(run_a)), _cells(Path(run_b))
    table = Table(title=f"A = {run_a}   B = {run_b}")
    for col in ("task", "shots", "demo images", "query image", "A", "B", "B - A"):
        table.add_column(col, justify="right" if col in ("shots", "A", "B", "B - A") else "left")
    rows = []
    for key in sorted(set(a) | set(b), key=lambda k: (k[0], k[2], k[3], k[1])):
        ca, cb = a.get(key), b.get(key)
        delta = cb["mean"] - ca["mean"] if ca and cb else None
        rows.append({"key": key, "a": ca and ca["mean"], "b": cb and cb["mean"], "delta": delta})
        style = "" if delta is None or abs(delta) < 1e-9 else ("green" if delta > 0 else "red")
        table.add_row(key[0], str(key[1]), key[2], key[3], fmt_score(ca) if ca else "-", fmt_score(cb) if cb else "-",
                      f"[{style}]{delta:+.2f}[/]" if delta is not None and style else
                      ("+0.00" if delta is not None else "-"))
    (console or Console()).print(table)
    return rows
