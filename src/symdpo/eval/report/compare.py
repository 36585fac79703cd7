"""``symdpo eval compare``: two runs' cells side by side, B - A, and whether it exceeds the trials' spread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from symdpo.atomic import write_text
from symdpo.eval.errors import EvalError
from symdpo.eval.report.cells import cell_key, condition_label
from symdpo.eval.report.stats import significance
from symdpo.eval.report.tables import fmt_score, latex_escape, latex_score, latex_table

COMPARE_LEGEND = (
    "A, B: mean ± std over trials. beyond spread?: a two-sided 5% t-test of B - A against the trials' spread, "
    "paired over the per-seed differences when both runs have the same seeds (df = trials - 1), else Welch's "
    "unequal-variance test; n/a when a run has one trial. The spread is that of the demonstrations drawn per "
    "trial, not of the evaluated items.")
NO_TEST = {"test": None, "t": None, "df": None, "differs": None}  # a cell missing from one run: nothing to test


def _cells(run: Path) -> dict[tuple, dict[str, Any]]:
    """Return a run's result cells by ``cell_key`` (task, shots, altered condition fields)."""
    path = Path(run) / "results.json"
    if not path.exists():
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
                      *latex_table(caption, "tab:symdpo-compare", "lrlrrr",
                                   ["Task", "Shots", "Condition", "A", "B", "$B - A$"], body)])


def _terminal_row(row: dict[str, Any]) -> list[str]:
    """Return a comparison row's cells for the terminal table (B - A coloured, bold when beyond the spread)."""
    key, ca, cb, delta = row["key"], row["cell_a"], row["cell_b"], row["delta"]
    style = "" if delta is None or abs(delta) < 1e-9 else ("green" if delta > 0 else "red")
    shown = "-" if delta is None else f"{delta:+.2f}"
    if style:
        shown = f"[{'bold ' if row['differs'] else ''}{style}]{shown}[/]"
    verdict = ("-" if delta is None else "n/a (1 trial)" if row["test"] is None else
               f"{'[bold]yes[/]' if row['differs'] else 'no'} ({row['test']})")
    return [key[0], str(key[1]), condition_label(key[2]), fmt_score(ca) if ca else "-",
            fmt_score(cb) if cb else "-", shown, verdict]


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
        test = significance(ca, cb) if delta is not None else NO_TEST
        rows.append({"key": key, "a": ca and ca["mean"], "b": cb and cb["mean"], "delta": delta,
                     "cell_a": ca, "cell_b": cb, **test})
        table.add_row(*_terminal_row(rows[-1]))
    out = console or Console()
    out.print(table)
    out.print(COMPARE_LEGEND, style="dim")
    if latex_path is not None:
        write_text(latex_path, compare_latex(rows, run_a, run_b) + "\n")
    return rows
