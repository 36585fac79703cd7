"""Metrics out of a run: JSONL always, TensorBoard / W&B / MLflow when installed and asked for, a PNG at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


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
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    os.replace(tmp, path)


def read_metrics(path: str | Path) -> list[dict]:
    """Return the logged steps of a metrics JSONL file."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def plot_curves(metrics_path: Path, out: Path, keys: list[str]) -> Path | None:
    """Write a PNG with one panel per metric in ``keys`` that was logged; return its path (None if nothing)."""
    rows = read_metrics(metrics_path) if metrics_path.is_file() else []
    keys = [k for k in keys if any(k in r for r in rows)]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: training machines have no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts])
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def progress_bar(total: int, *, enabled: bool) -> Progress:
    """Return a rich progress bar showing step, loss, reward accuracy and ETA."""
    return Progress(
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}"), TimeRemainingColumn(),
        disable=not enabled,
    )
