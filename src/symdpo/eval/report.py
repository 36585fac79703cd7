"""Report files of a run (results.json, results.md, shot-curve PNGs) and the side-by-side comparison."""

from __future__ import annotations

import json
import math
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from symdpo.atomic import write_bytes, write_text

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


# --- cells, conditions and the spread of the trials ---------------------------------------------------------

# cell fields that are not a condition; every other field of a cell (demo_images, query_image, ...) is one
STAT_FIELDS = frozenset({"task", "shots", "metric", "n", "trials", "mean", "std", "by_type"})
BASELINE = "real"  # the unaltered value of every condition field


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


def _paired(a: dict[str, Any], b: dict[str, Any]) -> np.ndarray | None:
    """Return B's minus A's score per seed when both have the same (several) seeds, else None."""
    sa, sb = seed_scores(a), seed_scores(b)
    if len(sa) < 2 or sa.keys() != sb.keys():
        return None
    return np.array([sb[s] - sa[s] for s in sorted(sa)])


def difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Return B - A of two cells with its spread: {"mean", "std", "paired", "trials"}."""
    # paired: the population std (as the cells') of the per-seed differences, when both cells have the same
    # seeds (cells of one run always do: same items, same demonstrations); else sqrt(std_A^2 + std_B^2)
    per_seed = _paired(a, b)
    if per_seed is not None:
        return {"mean": b["mean"] - a["mean"], "std": float(per_seed.std()), "paired": True, "trials": len(per_seed)}
    return {"mean": b["mean"] - a["mean"], "std": float(np.hypot(a["std"], b["std"])), "paired": False,
            "trials": min(len(a["trials"]), len(b["trials"]))}


def drops(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return per altered condition field of a cell the drop from the cell with that field real, with its spread."""
    by = {cell_key(c): c for c in cells}
    out = []
    for (task, shots, cond), cell in by.items():
        for i, (name, value) in enumerate(cond):
            others = cond[:i] + cond[i + 1:]
            base = by.get((task, shots, others))
            if base is None:  # e.g. 0 shots: no demonstrations to alter
                continue
            d = difference(cell, base)  # real - altered: positive when altering the field costs score
            out.append({"task": task, "shots": shots, "condition": name, "value": value,
                        "also_altered": condition_label(others) if others else None, "metric": cell["metric"],
                        "real": base["mean"], "real_std": base["std"], "score": cell["mean"], "score_std": cell["std"],
                        "drop": d["mean"], "drop_std": d["std"], "paired": d["paired"], "trials": d["trials"]})
    return out


def drop_label(row: dict[str, Any]) -> str:
    """Return the name of a drop's altered condition, e.g. "demo images blank (query image blank)"."""
    name = f"{row['condition'].replace('_', ' ')} {row['value']}"
    return f"{name} ({row['also_altered']})" if row.get("also_altered") else name


# two-sided 5% critical values of Student's t for 1..30 degrees of freedom (beyond 30: the value at 30,
# slightly conservative); a fractional (Welch) df is rounded down, which is conservative too
T_CRITICAL = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
              2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
              2.045, 2.042)


def t_critical(df: float) -> float:
    """Return the two-sided 5% critical value of Student's t with ``df`` degrees of freedom (rounded down)."""
    return T_CRITICAL[min(max(int(df), 1), len(T_CRITICAL)) - 1]


def significance(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Return the two-sided 5% t-test of B - A against the trials' spread: {"test", "t", "df", "differs"}."""
    # paired over the per-seed differences when both cells have the same seeds (df = trials - 1), else Welch's
    # unequal-variance test over the two sets of trial scores; test None (nothing to judge) with one trial
    delta = b["mean"] - a["mean"]
    per_seed = _paired(a, b)
    if per_seed is not None:
        test, se, df = "paired", float(per_seed.std(ddof=1)) / math.sqrt(len(per_seed)), len(per_seed) - 1.0
    elif len(a["trials"]) > 1 and len(b["trials"]) > 1:
        xa, xb = (np.array([t["score"] for t in c["trials"]]) for c in (a, b))
        va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
        se = float(math.sqrt(va + vb))
        df = len(xa) + len(xb) - 2.0  # Welch-Satterthwaite below; the pooled df when neither run varies
        if se > 0:
            df = float((va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1)))
        test = "Welch"
    else:
        return {"test": None, "t": None, "df": None, "differs": None}
    if se > 0:
        t = delta / se
    else:  # every trial pair differs by the same amount: any non-zero difference is beyond the spread
        t = math.copysign(math.inf, delta) if abs(delta) > 1e-9 else 0.0
    return {"test": test, "t": t, "df": df, "differs": abs(t) > t_critical(df)}


def fmt_mean_std(mean: float, std: float, trials: int) -> str:
    """Return "mean ± std" with two decimals, or the mean alone for one trial (no spread to show)."""
    return f"{mean:.2f} ± {std:.2f}" if trials > 1 else f"{mean:.2f}"


def fmt_score(cell: dict[str, Any]) -> str:
    """Return "mean ± std" with two decimals (the std only when there are several trials)."""
    return fmt_mean_std(cell["mean"], cell["std"], len(cell["trials"]))


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Return the lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(v) for v in row) + " |" for row in rows)]


def _by_type_columns(cells: Sequence[dict[str, Any]]) -> list[tuple[str, int | None]]:
    """Return one task's answer types with their item count (None when it differs between cells)."""
    kinds = list(dict.fromkeys(k for c in cells for k in c["by_type"]))
    return [(k, ns.pop() if len(ns := {c["by_type"][k]["n"] for c in cells if k in c["by_type"]}) == 1 else None)
            for k in kinds]


def markdown(results: dict[str, Any]) -> str:
    """Return the markdown report: provenance, the scores, the visual-reliance drops and the per-answer-type scores."""
    cfg = results["config"]
    cells = results["results"]
    fields = condition_fields(cells)
    lines = [f"# Evaluation of {cfg['model']}", "",
             f"- demos: {cfg['demo_selection']}, query set {cfg['query_set_size']}, trials {cfg['trials']} "
             f"(seeds from {cfg['seed']}), eval items {cfg['num_samples'] or 'all'}",
             f"- git {results.get('git_revision')}; CIDEr tokenizer: {results.get('cider_tokenizer') or 'n/a'}",
             "- scores: mean ± std over the trials (population std, as OpenFlamingo; one trial: the mean alone); "
             "n: evaluated items", ""]
    lines += _md_table(["task", "shots", *(f.replace("_", " ") for f in fields), "metric", "score", "trials", "n"],
                       [[c["task"], c["shots"], *(c.get(f, BASELINE) for f in fields), c["metric"], fmt_score(c),
                         len(c["trials"]), c["n"]] for c in cells])
    rows = drops(cells)
    if rows:
        lines += ["", "## Visual reliance (drop = score with the condition real - score with it altered, in points)",
                  "", "± of a drop: std of the per-seed drops (the trials share seeds and items), else "
                  "sqrt(std_real² + std_altered²).", ""]
        lines += _md_table(["task", "shots", "altered", "real", "altered score", "drop", "trials"],
                           [[r["task"], r["shots"], drop_label(r), fmt_mean_std(r["real"], r["real_std"], r["trials"]),
                             fmt_mean_std(r["score"], r["score_std"], r["trials"]),
                             ("+" if r["drop"] >= 0 else "") + fmt_mean_std(r["drop"], r["drop_std"], r["trials"]),
                             r["trials"]] for r in rows])
    typed = [c for c in cells if c.get("by_type")]
    if typed:
        lines += ["", "## By answer type (VQA accuracy, mean ± std over the trials)", "",
                  "Types: VQAv2 / OK-VQA the annotations' answer_type; easy-VQA yes/no, shape or color by its answer."]
        for task in dict.fromkeys(c["task"] for c in typed):
            tc = [c for c in typed if c["task"] == task]
            kinds = _by_type_columns(tc)
            lines += ["", f"### {task}", ""]
            header = ["shots", "condition", f"all (n={tc[0]['n']})",
                      *(f"{k} (n={n})" if n is not None else k for k, n in kinds)]
            body = []
            for c in tc:
                k_trials = len(c["trials"])
                body.append([c["shots"], condition_label(condition_of(c)), fmt_score(c), *(
                    fmt_mean_std(t["mean"], t["std"], k_trials) + ("" if n is not None else f" (n={t['n']})")
                    if (t := c["by_type"].get(k)) else "-" for k, n in kinds)])
            lines += _md_table(header, body)
    return "\n".join(lines) + "\n"


# metric name -> (axis label, top of its scale or None); every score is stored x100 (percent, CIDEr-D x 100)
METRIC_AXES = {"vqa_accuracy": ("VQA accuracy (%)", 100.0), "symbol_accuracy": ("symbol accuracy (%)", 100.0),
               "cider": ("CIDEr", None), "vlicl-parity": ("accuracy, VL-ICL's rules (%)", 100.0)}


def shot_curve_figure(task: str, cells: Sequence[dict[str, Any]], model: str):
    """Return the matplotlib Figure of one task's score against shots, a line per image condition."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    conds = list(dict.fromkeys(condition_of(c) for c in cells))  # a line per condition, whatever its fields
    for cond in conds:
        line = sorted((c for c in cells if condition_of(c) == cond), key=lambda c: c["shots"])
        several = any(len(c.get("trials", ())) > 1 for c in line)  # std over trials; none for one trial
        ax.errorbar([c["shots"] for c in line], [c["mean"] for c in line],
                    yerr=[c.get("std", 0.0) for c in line] if several else None,
                    marker="o", capsize=3, label=condition_label(cond) if cond else "all real")
    metric = cells[0]["metric"]
    label, top = METRIC_AXES.get(metric, (metric, 100.0 if metric.startswith("vlicl") else None))
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


# --- the visual-reliance drops figure -------------------------------------------------------------------------


def _metric_name(metric: str) -> tuple[str, str]:
    """Return a metric's name for an axis label and the unit of a difference of it ("percentage points", "points")."""
    label, top = METRIC_AXES.get(metric, (metric, 100.0 if metric.startswith("vlicl") else None))
    return label.removesuffix(" (%)"), "percentage points" if top == 100.0 else "points"


def drops_figure(rows: Sequence[dict[str, Any]], model: str):
    """Return the matplotlib Figure of the drops: per task, a bar per altered condition grouped by shots."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    ncols = min(len(tasks), 3)
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    colors = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(drop_label(r) for r in rows))}
    bars = False
    for ax, task in zip(axes.flat, tasks, strict=False):
        tr = [r for r in rows if r["task"] == task]
        shots = sorted({r["shots"] for r in tr})
        labels = list(dict.fromkeys(drop_label(r) for r in tr))
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            at = {r["shots"]: r for r in tr if drop_label(r) == label}
            here = [s for s in shots if s in at]
            several = any(at[s]["trials"] > 1 for s in here)  # error bars only where there is a spread
            bars |= several
            ax.bar([shots.index(s) + (j - (len(labels) - 1) / 2) * width for s in here],
                   [at[s]["drop"] for s in here], width, yerr=[at[s]["drop_std"] for s in here] if several else None,
                   capsize=3, color=colors[label], label=label)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(shots)), [str(s) for s in shots])
        ax.set_xlabel("shots (in-context demonstrations)")
        name, unit = _metric_name(tr[0]["metric"])
        ax.set_ylabel(f"drop in {name} ({unit})")
        ax.set_title(task, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    name = "\n".join(textwrap.wrap(str(model), 55 * ncols, break_on_hyphens=False)) or "?"
    note = "\nerror bars: std over trials of the drop (per-seed pairs)" if bars else ""
    fig.suptitle(f"Visual reliance: score with the condition real minus altered\n{name}{note}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_drops(run_dir: Path, results: dict[str, Any]) -> Path | None:
    """Write drops.png (see ``drops_figure``) atomically when the run has altered conditions; return its path."""
    rows = drops(results["results"])
    if not rows:
        return None
    import io

    fig = drops_figure(rows, results["config"]["model"])
    import matplotlib.pyplot as plt  # after drops_figure chose the headless backend

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_bytes(Path(run_dir) / "drops.png", buf.getvalue())


# --- LaTeX ----------------------------------------------------------------------------------------------------

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: Any) -> str:
    """Return ``text`` with LaTeX's special characters (_ % & $ # { } ~ ^ \\) escaped for text mode."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_score(mean: float, std: float, trials: int) -> str:
    """Return "$45.71 \\pm 1.23$" (the mean alone for one trial)."""
    return f"${mean:.2f} \\pm {std:.2f}$" if trials > 1 else f"${mean:.2f}$"


def _latex_table(caption: str, label: str, align: str, header: Sequence[str],
                 rows: Sequence[Sequence[str]]) -> list[str]:
    """Return the lines of a booktabs table (cells already LaTeX; the caption too)."""
    return [r"\begin{table}[t]", r"\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
            f"\\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule",
            *(" & ".join(row) + r" \\" for row in rows), r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]


def _label(*parts: Any) -> str:
    """Return a LaTeX label made of ``parts`` (letters, digits and hyphens only)."""
    return "tab:" + "-".join("".join(ch if ch.isalnum() else "-" for ch in str(p)) for p in parts)


def _items(cells: Sequence[dict[str, Any]]) -> str:
    """Return the evaluated item count of cells ("100", or "80--100" when they differ)."""
    ns = sorted({c["n"] for c in cells})
    return str(ns[0]) if len(ns) == 1 else f"{ns[0]}--{ns[-1]}"


def latex(results: dict[str, Any]) -> str:
    """Return results.tex: per task a booktabs table of mean ± std (a column per shot count, a row per condition)."""
    model = latex_escape(results["config"]["model"])
    cells = results["results"]
    lines = [r"% symdpo evaluation tables; they need \usepackage{booktabs}", ""]
    for task in dict.fromkeys(c["task"] for c in cells):
        tc = [c for c in cells if c["task"] == task]
        shots = sorted({c["shots"] for c in tc})
        conds = sorted(dict.fromkeys(condition_of(c) for c in tc), key=lambda k: k != ())  # real first, stable
        at = {cell_key(c): c for c in tc}
        trials = max(len(c["trials"]) for c in tc)
        name, _ = METRIC_AXES.get(tc[0]["metric"], (tc[0]["metric"], None))
        spread = f"mean $\\pm$ std over {trials} trials" if trials > 1 else "one trial"
        caption = f"{latex_escape(task)}: {latex_escape(name)}, {spread}, {_items(tc)} items. Model: {model}."
        rows = [[latex_escape(condition_label(k)),
                 *(latex_score(c["mean"], c["std"], len(c["trials"])) if (c := at.get((task, s, k))) else "--"
                   for s in shots)] for k in conds]
        lines += _latex_table(caption, _label("symdpo", task), "l" + "r" * len(shots),
                              ["Condition", *(f"{s}-shot" for s in shots)], rows)
        typed = [c for c in tc if c.get("by_type")]
        if typed:
            kinds = _by_type_columns(typed)
            rows = [[str(c["shots"]), latex_escape(condition_label(condition_of(c))),
                     latex_score(c["mean"], c["std"], len(c["trials"])),
                     *(latex_score(t["mean"], t["std"], len(c["trials"])) if (t := c["by_type"].get(k)) else "--"
                       for k, _ in kinds)] for c in typed]
            header = ["Shots", "Condition", f"All ({typed[0]['n']})",
                      *(latex_escape(k) + (f" ({n})" if n is not None else "") for k, n in kinds)]
            caption = (f"{latex_escape(task)} by answer type (items in parentheses): {latex_escape(name)}, "
                       f"{spread}. Model: {model}.")
            lines += _latex_table(caption, _label("symdpo", task, "types"), "rl" + "r" * (len(kinds) + 1), header, rows)
    return "\n".join(lines)


def write_reports(run_dir: Path, results: dict[str, Any]) -> None:
    """Write results.json, results.md, results.tex, the shot-curve PNGs and drops.png into ``run_dir``."""
    write_text(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    write_text(run_dir / "results.md", markdown(results))
    write_text(run_dir / "results.tex", latex(results))
    plot_curves(run_dir, results)
    plot_drops(run_dir, results)


# --- comparing two runs -----------------------------------------------------------------------------------------

COMPARE_LEGEND = (
    "A, B: mean ± std over trials. beyond spread?: a two-sided 5% t-test of B - A against the trials' spread, "
    "paired over the per-seed differences when both runs have the same seeds (df = trials - 1), else Welch's "
    "unequal-variance test; n/a when a run has one trial. The spread is that of the demonstrations drawn per "
    "trial, not of the evaluated items.")


def _cells(run: Path) -> dict[tuple, dict[str, Any]]:
    """Return a run's result cells by ``cell_key`` (task, shots, altered condition fields)."""
    path = Path(run) / "results.json"
    if not path.exists():
        from symdpo.eval.errors import EvalError

        raise EvalError(f"{run}: no results.json (run or merge it first)")
    data = json.loads(path.read_text())
    return {cell_key(c): c for c in data["results"]}


def compare_latex(rows: Sequence[dict[str, Any]], run_a: str | Path, run_b: str | Path) -> str:
    """Return the comparison as a booktabs LaTeX table; a starred B - A exceeds the trials' spread."""
    body = []
    for r in rows:
        ca, cb = r["cell_a"], r["cell_b"]
        delta = "--" if r["delta"] is None else f"${r['delta']:+.2f}{'^{*}' if r['differs'] else ''}$"
        body.append([latex_escape(r["key"][0]), str(r["key"][1]), latex_escape(condition_label(r["key"][2])),
                     latex_score(ca["mean"], ca["std"], len(ca["trials"])) if ca else "--",
                     latex_score(cb["mean"], cb["std"], len(cb["trials"])) if cb else "--", delta])
    caption = (f"A = {latex_escape(run_a)}, B = {latex_escape(run_b)}: mean $\\pm$ std over trials. $^{{*}}$: "
               "$B - A$ exceeds the trials' spread (two-sided 5\\% t-test, paired by seed when the runs share seeds, "
               "else Welch's).")
    return "\n".join([r"% symdpo eval compare; needs \usepackage{booktabs}",
                      *_latex_table(caption, "tab:symdpo-compare", "lrlrrr",
                                    ["Task", "Shots", "Condition", "A", "B", "$B - A$"], body)])


def compare(run_a: str | Path, run_b: str | Path, *, console: Any = None,
            latex_path: str | Path | None = None) -> list[dict[str, Any]]:
    """Print two runs' cells side by side with B - A and whether it exceeds the trials' spread; return the rows.

    The test is ``significance``: a two-sided 5% t-test, paired over per-seed differences when both cells have
    the same seeds (same seeds mean the same evaluated items and demonstration draws), else Welch's; with one
    trial on either side there is no spread and nothing is judged. The spread is over demonstration draws only.
    Cells match on task, shots and altered conditions (a condition field a run lacks counts as real).
    ``latex_path``: also write the table there as LaTeX (``compare_latex``)."""
    from rich.console import Console
    from rich.table import Table

    a, b = _cells(Path(run_a)), _cells(Path(run_b))
    table = Table(title=f"A = {run_a}   B = {run_b}")
    for col in ("task", "shots", "condition", "A", "B", "B - A", "beyond spread?"):
        table.add_column(col, justify="right" if col in ("shots", "A", "B", "B - A") else "left",
                         no_wrap=col in ("A", "B", "B - A"))
    rows = []
    for key in sorted(set(a) | set(b), key=lambda k: (k[0], k[2], k[1])):
        ca, cb = a.get(key), b.get(key)
        delta = cb["mean"] - ca["mean"] if ca and cb else None
        test = significance(ca, cb) if delta is not None else {"test": None, "t": None, "df": None, "differs": None}
        rows.append({"key": key, "a": ca and ca["mean"], "b": cb and cb["mean"], "delta": delta,
                     "cell_a": ca, "cell_b": cb, **test})
        style = "" if delta is None or abs(delta) < 1e-9 else ("green" if delta > 0 else "red")
        shown = "-" if delta is None else f"{delta:+.2f}"
        if style:
            shown = f"[{'bold ' if test['differs'] else ''}{style}]{shown}[/]"
        verdict = ("-" if delta is None else "n/a (1 trial)" if test["test"] is None else
                   f"{'[bold]yes[/]' if test['differs'] else 'no'} ({test['test']})")
        table.add_row(key[0], str(key[1]), condition_label(key[2]), fmt_score(ca) if ca else "-",
                      fmt_score(cb) if cb else "-", shown, verdict)
    out = console or Console()
    out.print(table)
    out.print(COMPARE_LEGEND, style="dim")
    if latex_path is not None:
        write_text(latex_path, compare_latex(rows, run_a, run_b) + "\n")
    return rows
