"""Metrics out of a run: JSONL always, TensorBoard / W&B / MLflow when installed and asked for, a PNG at the end."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from symdpo.atomic import write_text


class Tracker:
    """Writes one JSON line per logged step (main process only) and mirrors it to the optional backends."""

    def __init__(self, output_dir: Path, cfg, *, resume_step: int = 0, enabled: bool = True, run_config: dict | None = None):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._tb = self._wandb = self._mlflow = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.path, resume_step)  # steps logged after the checkpoint we resume from are redone
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"), purge_step=resume_step + 1)
            except ImportError:
                pass  # tensorboard not installed: JSONL only
        if cfg.wandb:
            import wandb  # asked for explicitly: a missing package is an error

            self._wandb = wandb.init(dir=str(output_dir), config=run_config, resume="allow")
        if cfg.mlflow:
            import mlflow

            mlflow.start_run()
            self._mlflow = mlflow

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` of optimiser step ``step``."""
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self._tb:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb:
            self._wandb.log(metrics, step=step)
        if self._mlflow:
            self._mlflow.log_metrics({k.replace("/", "_"): v for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        """Flush and close the backends."""
        if self._tb:
            self._tb.close()
        if self._wandb:
            self._wandb.finish()
        if self._mlflow:
            self._mlflow.end_run()


def _truncate_after(path: Path, step: int) -> None:
    """Drop the JSONL lines of steps after ``step`` (atomically)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    write_text(path, "".join(ln + "\n" for ln in lines))


def read_metrics(path: str | Path) -> list[dict]:
    """Return the logged steps of a metrics JSONL file."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def _panels(rows: list[dict], keys: list[str]) -> list[tuple[str, list[str]]]:
    """Return (metric, logged series) per panel: the metric and its ``eval/`` twin, in ``keys`` order."""
    panels, seen = [], set()
    for key in keys:
        base = key.removeprefix("eval/")
        series = [k for k in (base, f"eval/{base}") if any(k in r for r in rows)]
        if series and base not in seen:
            seen.add(base)
            panels.append((base, series))
    return panels


def _wrap(name: str, width: int = 30) -> str:
    """Return ``name`` broken after a "/" into lines of at most ``width`` characters where it can be."""
    lines = [""]
    for part in name.split("/"):
        piece = part if not lines[-1] else "/" + part
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


NONNEGATIVE = ("loss", "lr", "grad_norm")  # metric families that cannot go below 0 (with the losses that can't)


def curves_figure(rows: list[dict], keys: list[str]):
    """Return a matplotlib Figure with a grid of panels (3 columns at most), one per logged metric, or None."""
    panels = _panels(rows, keys)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: training machines have no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3 * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax, (base, series) in zip(flat, panels, strict=False):
        values = []
        for key in series:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            values += [v for _, v in pts]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None, markersize=3,
                    clip_on=False, label="eval" if key.startswith("eval/") else "train")
        ax.set_title(_wrap(base), fontsize=10)
        ax.set_xlabel("optimiser step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if "accuracies" in base or "accuracy" in base:
            ax.set_ylim(0, 1)  # fractions of pairs / items
        elif base.split("/")[0] in NONNEGATIVE and min(values) >= 0 and ax.get_ylim()[0] < 0:
            ax.set_ylim(bottom=0)  # the autoscale margin would dip below what the metric can be
        if len(series) > 1:
            ax.legend(fontsize=8)
    for ax in flat[len(panels):]:
        fig.delaxes(ax)
    fig.tight_layout()
    return fig


def plot_curves(metrics_path: Path, out: Path, keys: list[str]) -> Path | None:
    """Write the PNG of ``curves_figure`` for a metrics JSONL file; return its path (None if nothing was logged)."""
    rows = read_metrics(metrics_path) if metrics_path.is_file() else []
    fig = curves_figure(rows, keys)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _duration(seconds: float) -> str:
    """Return ``seconds`` as "45s", "1m12s" or "2h03m"."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class PlainProgress:
    """Rich Progress's add_task/update/context-manager interface, printing a plain line every ~5% or ``every_s``."""

    def __init__(self, total: int, *, file: TextIO | None = None, every_s: float = 30.0, clock=time.monotonic):
        self.total, self.file, self.every_s, self.clock = total, file, every_s, clock
        self.fields: dict = {}
        self.done = self.start = self.last = 0
        self.t0 = self.t_last = clock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, *, total: int | None = None, completed: int = 0, **fields) -> int:
        """Start counting from ``completed``; return the task id (always 0)."""
        self.total = total if total is not None else self.total
        self.done = self.start = self.last = completed
        self.fields = fields
        self.t0 = self.t_last = self.clock()
        return 0

    def update(self, task: int, *, completed: int | None = None, advance: int = 0, **fields) -> None:
        """Record progress; print a line when 5% of the run or ``every_s`` passed since the last, and at the end."""
        self.done = completed if completed is not None else self.done + advance
        self.fields.update(fields)
        now = self.clock()
        stride = max(1, -(-self.total // 20))
        if self.done >= self.total or self.done - self.last >= stride or now - self.t_last >= self.every_s:
            self.last, self.t_last = self.done, now
            print(self.line(now), file=self.file or sys.stderr, flush=True)

    def line(self, now: float) -> str:
        """Return e.g. "step 40/200  loss 0.6931  acc 0.50  eta 1m12s" (fields that are "-" or "nan" left out)."""
        parts = [f"step {self.done}/{self.total}"]
        parts += [f"{k} {v}" for k, v in self.fields.items() if str(v) not in ("-", "nan")]
        ran = self.done - self.start
        if 0 < ran and self.done < self.total:
            parts.append(f"eta {_duration((now - self.t0) / ran * (self.total - self.done))}")
        elif self.done >= self.total:
            parts.append(f"took {_duration(now - self.t0)}")
        return "  ".join(parts)


def progress_bar(total: int, *, enabled: bool, file: TextIO | None = None) -> Progress | PlainProgress:
    """Return a live rich bar on a terminal, plain periodic lines otherwise (SLURM logs, pipes), or a silent bar."""
    console = Console(file=file or sys.stderr)
    if enabled and not console.is_terminal:
        return PlainProgress(total, file=file)
    return Progress(
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}"), TimeRemainingColumn(),
        console=console, disable=not enabled,
    )
