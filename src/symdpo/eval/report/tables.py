"""A run's score tables: results.md (Markdown) and results.tex (booktabs LaTeX), and the formatting they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from symdpo.eval.report.cells import (
    BASELINE,
    cell_key,
    condition_fields,
    condition_label,
    condition_of,
    metric_axis,
)
from symdpo.eval.report.stats import drop_label, drops


def fmt_mean_std(mean: float, std: float, trials: int) -> str:
    """Return "mean ± std" with two decimals, or the mean alone for one trial (no spread to show)."""
    return f"{mean:.2f} ± {std:.2f}" if trials > 1 else f"{mean:.2f}"


def fmt_score(cell: dict[str, Any]) -> str:
    """Return "mean ± std" with two decimals (the std only when there are several trials)."""
    return fmt_mean_std(cell["mean"], cell["std"], len(cell["trials"]))


def _by_type_columns(cells: Sequence[dict[str, Any]]) -> list[tuple[str, int | None]]:
    """Return one task's answer types with their item count (None when it differs between cells)."""
    kinds = list(dict.fromkeys(k for c in cells for k in c["by_type"]))
    return [(k, ns.pop() if len(ns := {c["by_type"][k]["n"] for c in cells if k in c["by_type"]}) == 1 else None)
            for k in kinds]


# --- Markdown ---------------------------------------------------------------------------------------------------


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Return the lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(v) for v in row) + " |" for row in rows)]


def _md_drops(cells: Sequence[dict[str, Any]]) -> list[str]:
    """Return the markdown section of the visual-reliance drops ([] when no condition is altered)."""
    rows = drops(cells)
    if not rows:
        return []
    lines = ["", "## Visual reliance (drop = score with the condition real - score with it altered, in points)",
             "", "± of a drop: std of the per-seed drops (the trials share seeds and items), else "
             "sqrt(std_real² + std_altered²).", ""]
    body = [[r["task"], r["shots"], drop_label(r), fmt_mean_std(r["real"], r["real_std"], r["trials"]),
             fmt_mean_std(r["score"], r["score_std"], r["trials"]),
             ("+" if r["drop"] >= 0 else "") + fmt_mean_std(r["drop"], r["drop_std"], r["trials"]), r["trials"]]
            for r in rows]
    return lines + _md_table(["task", "shots", "altered", "real", "altered score", "drop", "trials"], body)


def _md_by_type(cells: Sequence[dict[str, Any]]) -> list[str]:
    """Return the markdown section of the per-answer-type scores, a table per task ([] when no cell has types)."""
    typed = [c for c in cells if c.get("by_type")]
    if not typed:
        return []
    lines = ["", "## By answer type (VQA accuracy, mean ± std over the trials)", "",
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
    return lines


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
    lines += _md_drops(cells)
    lines += _md_by_type(cells)
    return "\n".join(lines) + "\n"


# --- LaTeX ------------------------------------------------------------------------------------------------------

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: Any) -> str:
    """Return ``text`` with LaTeX's special characters (_ % & $ # { } ~ ^ \\) escaped for text mode."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_score(mean: float, std: float, trials: int) -> str:
    """Return "$45.71 \\pm 1.23$" (the mean alone for one trial)."""
    return f"${mean:.2f} \\pm {std:.2f}$" if trials > 1 else f"${mean:.2f}$"


def latex_table(caption: str, label: str, align: str, header: Sequence[str],
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


def _latex_by_type(task: str, typed: Sequence[dict[str, Any]], name: str, spread: str, model: str) -> list[str]:
    """Return the booktabs table of one task's per-answer-type scores (a row per shot count and condition)."""
    kinds = _by_type_columns(typed)
    rows = [[str(c["shots"]), latex_escape(condition_label(condition_of(c))),
             latex_score(c["mean"], c["std"], len(c["trials"])),
             *(latex_score(t["mean"], t["std"], len(c["trials"])) if (t := c["by_type"].get(k)) else "--"
               for k, _ in kinds)] for c in typed]
    header = ["Shots", "Condition", f"All ({typed[0]['n']})",
              *(latex_escape(k) + (f" ({n})" if n is not None else "") for k, n in kinds)]
    caption = (f"{latex_escape(task)} by answer type (items in parentheses): {latex_escape(name)}, "
               f"{spread}. Model: {model}.")
    return latex_table(caption, _label("symdpo", task, "types"), "rl" + "r" * (len(kinds) + 1), header, rows)


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
        name, _ = metric_axis(tc[0]["metric"])
        spread = f"mean $\\pm$ std over {trials} trials" if trials > 1 else "one trial"
        caption = f"{latex_escape(task)}: {latex_escape(name)}, {spread}, {_items(tc)} items. Model: {model}."
        rows = [[latex_escape(condition_label(k)),
                 *(latex_score(c["mean"], c["std"], len(c["trials"])) if (c := at.get((task, s, k))) else "--"
                   for s in shots)] for k in conds]
        lines += latex_table(caption, _label("symdpo", task), "l" + "r" * len(shots),
                             ["Condition", *(f"{s}-shot" for s in shots)], rows)
        typed = [c for c in tc if c.get("by_type")]
        if typed:
            lines += _latex_by_type(task, typed, name, spread, model)
    return "\n".join(lines)
