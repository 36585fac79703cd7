"""The report of an evaluation run and the comparison of two runs.

- ``cells``: a result cell's identity (task, shots, altered conditions) and how its metric reads
- ``stats``: the visual-reliance drops and the t-test of a difference between cells
- ``tables``: results.md and results.tex
- ``figures``: the shot curves (shots_<task>.png) and drops.png
- ``compare``: ``symdpo eval compare``, two runs side by side
- ``provenance``: the package versions and git commit recorded in results.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from symdpo.atomic import write_text
from symdpo.eval.report.figures import plot_curves, plot_drops
from symdpo.eval.report.tables import latex, markdown


def write_reports(run_dir: Path, results: dict[str, Any]) -> None:
    """Write results.json, results.md, results.tex, the shot-curve PNGs and drops.png into ``run_dir``."""
    write_text(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    write_text(run_dir / "results.md", markdown(results))
    write_text(run_dir / "results.tex", latex(results))
    plot_curves(run_dir, results)
    plot_drops(run_dir, results)
