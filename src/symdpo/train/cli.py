"""`symdpo train sft|dpo --config FILE [key=value ...] [--resume]` (mounted by `symdpo.cli` as `train`)."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from symdpo.boundary import GuardedGroup
from symdpo.config import ConfigError, load_config
from symdpo.errors import UsageError, one_line
from symdpo.train.config import TrainConfig

app = typer.Typer(cls=GuardedGroup, help="Fine-tune with SFT or SymDPO (accelerate: 1 process, DDP, FSDP, DeepSpeed).",
                  no_args_is_help=True)

CONFIG = typer.Option(..., "--config", "-c", help="YAML recipe, e.g. configs/tiny_dpo.yaml")
OVERRIDES = typer.Argument(None, help="dotted overrides: optim.lr=1e-5 data.path=pairs.jsonl")
RESUME = typer.Option(False, "--resume", help="continue from the newest checkpoint in output_dir")


def _load(config: Path, overrides: list[str] | None) -> TrainConfig:
    """Return the validated config; a bad file or override is a usage error (one line, exit 2)."""
    try:
        return load_config(config, overrides or [], TrainConfig)
    except ConfigError as e:
        raise UsageError(one_line(str(e))) from None


def _finish(result: dict) -> None:
    """Close the process group of a launched run, say how the run ended; a signal's stop exits 128 + signal."""
    from symdpo.distributed import close_process_group

    close_process_group()
    if result["stopped"]:
        name = signal.Signals(result["signal"]).name if result.get("signal") else "a signal"
        typer.echo(f"stopped by {name} after step {result['step']}; checkpoint saved: rerun the same command "
                   "with --resume to continue", err=True)
        raise typer.Exit(128 + (result.get("signal") or signal.SIGTERM))  # 130 for Ctrl-C, 143 for SIGTERM
    if result["final"]:
        typer.echo(f"done after step {result['step']}: {result['final']}", err=True)


@app.command()
def dpo(config: Path = CONFIG, overrides: list[str] = OVERRIDES, resume: bool = RESUME) -> None:
    """Train with SymDPO (DPO + SFT term) on preference records."""
    from symdpo.train.dpo import train_dpo

    _finish(train_dpo(_load(config, overrides), resume=resume))


@app.command()
def sft(config: Path = CONFIG, overrides: list[str] = OVERRIDES, resume: bool = RESUME) -> None:
    """Supervised fine-tuning on the answers (SFT records' targets, or preference records' chosen)."""
    from symdpo.train.sft import train_sft

    _finish(train_sft(_load(config, overrides), resume=resume))


if __name__ == "__main__":  # `python -m symdpo.train.cli` (torchrun / accelerate launch entry)
    import sys

    from symdpo.boundary import run_app

    run_app(app, sys.argv[1:], "python -m symdpo.train.cli")
