"""The spread of a difference between two cells: the visual-reliance drops and the t-test of a comparison.

Both pair the trials by seed when the cells share seeds (cells of one run always do: same items, same
demonstrations), else treat the two cells' trials as independent samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from symdpo.eval.report.cells import cell_key, condition_label, seed_scores


def _paired(a: dict[str, Any], b: dict[str, Any]) -> np.ndarray | None:
    """Return B's minus A's score per seed when both have the same (several) seeds, else None."""
    sa, sb = seed_scores(a), seed_scores(b)
    if len(sa) < 2 or sa.keys() != sb.keys():
        return None
    return np.array([sb[s] - sa[s] for s in sorted(sa)])


def difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Return B - A of two cells with its spread: {"mean", "std", "paired", "trials"}."""
    # paired: the population std (as the cells') of the per-seed differences, when both cells have the same
    # seeds; else sqrt(std_A^2 + std_B^2)
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


def t_critical(df: float) -> float:
    """Return the two-sided 5% critical value of Student's t with ``df`` degrees of freedom (fractional for Welch)."""
    from scipy import stats  # here, not at import: the CLI starts without loading scipy

    return float(stats.t.ppf(0.975, df))


def _welch(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    """Return (standard error, degrees of freedom) of B - A over the two cells' trials as independent samples."""
    xa, xb = (np.array([t["score"] for t in c["trials"]]) for c in (a, b))
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    se = float(math.sqrt(va + vb))
    if se == 0:  # neither cell varies: the pooled df (Welch-Satterthwaite's is 0 / 0)
        return se, len(xa) + len(xb) - 2.0
    return se, float((va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1)))


def significance(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Return the two-sided 5% t-test of B - A against the trials' spread: {"test", "t", "df", "differs"}."""
    # paired over the per-seed differences when both cells have the same seeds (df = trials - 1), else Welch's
    # unequal-variance test over the two sets of trial scores; test None (nothing to judge) with one trial
    delta = b["mean"] - a["mean"]
    per_seed = _paired(a, b)
    if per_seed is not None:
        test, se, df = "paired", float(per_seed.std(ddof=1)) / math.sqrt(len(per_seed)), len(per_seed) - 1.0
    elif len(a["trials"]) > 1 and len(b["trials"]) > 1:
        test, (se, df) = "Welch", _welch(a, b)
    else:
        return {"test": None, "t": None, "df": None, "differs": None}
    if se > 0:
        t = delta / se
    else:  # every trial pair differs by the same amount: any non-zero difference is beyond the spread
        t = math.copysign(math.inf, delta) if abs(delta) > 1e-9 else 0.0
    return {"test": test, "t": t, "df": df, "differs": abs(t) > t_critical(df)}
