"""``symdpo model``: convert OpenFlamingo checkpoints, export fine-tunes, describe a model."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Models: presets, OpenFlamingo checkpoint conversion, export.", no_args_is_help=True)


@app.command("presets")
def presets() -> None:
    """List the model presets."""
    from rich.console import Console
    from rich.table import Table

    from symdpo.models.presets import PRESETS

    table = Table("preset", "checkpoint", "description")
    for p in PRESETS.values():
        table.add_row(p.name, p.checkpoint or "-", p.description)
    Console().print(table)


@app.command("convert")
def convert(
    checkpoint: Path = typer.Argument(..., help="OpenFlamingo checkpoint.pt"),
    out: Path = typer.Option(..., "--out", help="directory to write (our safetensors format)"),
    preset: str = typer.Option("openflamingo-3b-instruct", help="architecture the checkpoint belongs to"),
) -> None:
    """Load an OpenFlamingo ``checkpoint.pt`` strictly onto a preset's architecture and save it in our format."""
    from symdpo.models.flamingo.build import build_flamingo
    from symdpo.models.flamingo.checkpoints import load_openflamingo_checkpoint
    from symdpo.models.presets import preset_config

    cfg = preset_config(preset)
    lmm = build_flamingo(cfg)
    kept = load_openflamingo_checkpoint(lmm.model, checkpoint, lm_format=cfg.lm_format)
    lmm.source = preset
    lmm.save_pretrained(out)
    typer.echo(f"wrote {out} ({len(kept)} LM tensors kept from the base LM, the rest from {checkpoint})")


@app.command("export")
def export(model: str = typer.Argument(..., help="a fine-tune directory (trainable weights over a base)"),
           out: Path = typer.Option(..., "--out")) -> None:
    """Write a self-contained full copy (all weights) of a model."""
    from symdpo.models.presets import load_model

    lmm = load_model(model)
    lmm.save_pretrained(out)
    typer.echo(f"wrote {out}")


@app.command("info")
def info(model: str = typer.Argument(..., help="preset name or model directory")) -> None:
    """Print a model's size and trainable set."""
    from symdpo.models.flamingo.build import set_openflamingo_trainable
    from symdpo.models.presets import load_model

    lmm = load_model(model)
    total = sum(p.numel() for p in lmm.model.parameters())
    trainable = sum(p.numel() for p in set_openflamingo_trainable(lmm.model))
    typer.echo(f"{model}: {total:,} parameters, {trainable:,} in OpenFlamingo's trainable set, "
               f"{len(lmm.model.xattn)} cross-attention blocks, LM {type(lmm.model.lm).__name__}")
