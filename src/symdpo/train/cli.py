"""`symdpo train sft|dpo --config FILE [key=value ...] [--resume]` (mounted by `symdpo.cli` as `train`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from symdpo.config import ConfigError, load_config
from symdpo.train.config import TrainConfig

app = typer.Typer(help="Fine-tune with SFT or SymDPO (accelerate: 1 process, DDP, FSDP, DeepSpeed).",
                  no_args_is_help=True)
console = Console(stderr=True)

CONFIG = typer.Option(..., "--config", "-c", help="YAML recipe, e.g. configs/tiny_dpo.yaml")
OVERRIDES = typer.Argument(None, help="dotted overrides: optim.lr=1e-5 data.path=pairs.jsonl")
RESUME = typer.Option(False, "--resume", help="continue from the newest checkpoint in output_dir")


def _load(config: Path, overrides: list[str] | None) -> TrainConfig:
    try:
        return load_config(config, overrides or [], TrainConfig)
    except ConfigError as e:
        console.print(f"[red]{e}")
        raise typer.Exit(2) from None


def _finish(result: dict) -> None:
    """Close the process group of a launched run, then say how the run ended."""
    from symdpo.distributed import close_process_group

    close_process_group()
    if result["stopped"]:
        console.print(f"stopped by SIGTERM after step {result['step']}; checkpoint saved — rerun with --resume")
    elif result["final"]:
        console.print(f"done after step {result['step']}: {result['final']}")


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
    app()
