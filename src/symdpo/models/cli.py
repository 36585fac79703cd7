"""``symdpo model``: convert OpenFlamingo checkpoints, export fine-tunes, describe a model."""

from __future__ import annotations

from pathlib import Path

import typer

from symdpo.boundary import GuardedGroup

app = typer.Typer(cls=GuardedGroup, help="Models: presets, OpenFlamingo checkpoint conversion, export.", no_args_is_help=True)


@app.command("presets")
def presets() -> None:
    """List the model presets of every family, grouped by family, in a table as wide as the terminal."""
    from rich.console import Console
    from rich.table import Table

    from symdpo.models.registry import presets as all_presets

    rows, console = all_presets(), Console()
    families = list(dict.fromkeys(p.family for p in rows))  # registry order: Flamingo first
    name_w = max(len(p.name) for p in rows) + 2  # names indented under their family
    room = max(console.width - name_w - 6, 24)  # 6: two column rules and the inner padding
    weights_w = min(max(len(p.source) for p in rows), max(12, room * 2 // 5))
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("preset", width=name_w, no_wrap=True)
    table.add_column("weights", width=weights_w, no_wrap=True, overflow="ellipsis")
    desc_w = min(room - weights_w, max(len(p.description) for p in rows))
    table.add_column("description", width=desc_w, no_wrap=True, overflow="ellipsis")
    for family in families:
        table.add_row(f"[bold cyan]{family}[/]", "", "")
        group = [p for p in rows if p.family == family]
        for i, p in enumerate(group):
            table.add_row(f"  {p.name}", p.source, p.description, end_section=i == len(group) - 1)
    console.print(table)


@app.command("convert")
def convert(
    checkpoint: Path = typer.Argument(..., help="OpenFlamingo checkpoint.pt"),
    out: Path = typer.Option(..., "--out", help="directory to write (our safetensors format)"),
    preset: str = typer.Option("openflamingo-3b-instruct", help="architecture the checkpoint belongs to"),
) -> None:
    """Load an OpenFlamingo ``checkpoint.pt`` strictly onto a preset's architecture and save it in our format."""
    from symdpo.models.flamingo.build import build_flamingo, preset_config
    from symdpo.models.flamingo.checkpoints import load_openflamingo_checkpoint

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
    from symdpo.models.registry import load_model

    lmm = load_model(model)
    lmm.save_pretrained(out)
    card = Path(model) / "README.md"
    if card.is_file():  # the fine-tune's model card describes the export too
        from symdpo.atomic import write_text

        write_text(Path(out) / "README.md", card.read_text())
    typer.echo(f"wrote {out}")


@app.command("push")
def push(model: Path = typer.Argument(..., help="a saved model folder (a run's final/ or an export)"),
         repo: str = typer.Option(..., "--repo", help="hub repository id, e.g. you/of3b-symdpo"),
         private: bool = typer.Option(False, "--private", help="create the repository private"),
         message: str = typer.Option("Upload a symdpo model", "--message", help="the commit message")) -> None:
    """Upload a saved model (weights, config, processor, model card) to the Hugging Face Hub."""
    from symdpo.models.push import push as push_folder

    typer.echo(f"uploaded {model} to {push_folder(model, repo, private=private, message=message)}")


@app.command("info")
def info(model: str = typer.Argument(..., help="preset name or model directory")) -> None:
    """Print a model's family, size, default training policy and parts."""
    from symdpo.models.registry import load_model

    about = load_model(model).info()
    typer.echo(f"{model}: {about.family}, {about.parameters:,} parameters, {about.trainable:,} trainable under its "
               f"default policy {about.default_policy!r}")
    from symdpo.models.policies import POLICY_MEANINGS

    typer.echo("  policies (model.policy; the same meaning in every family):")
    for name, meaning in POLICY_MEANINGS.items():
        typer.echo(f"    {name:<13}{meaning}" + ("  [default]" if name == about.default_policy else ""))
    typer.echo("  parts: " + ", ".join(f"{k} {v:,}" for k, v in about.parts.items()))
    typer.echo(f"  prompts: {about.prompt_style} style, answers end with {about.end_of_chunk!r}")


@app.command("memory")
def memory(model: str = typer.Argument(..., help="preset name or model directory"),
           gpus: str = typer.Option("1,2,4,8", help="GPU counts, comma-separated"),
           gpu_memory: str = typer.Option("24,40,80,141", help="GPU memory sizes in GiB for the 'fewest GPUs' line")) -> None:
    """Print the model-state memory per GPU of training ``model`` under DDP, ZeRO-2 and FSDP / ZeRO-3 (by calculation)."""
    from symdpo.errors import UsageError
    from symdpo.models.memory import ENGINE_NAMES, ENGINES, fewest_gpus, meta_counts, states_gib

    try:
        counts, sizes = [int(g) for g in gpus.split(",")], [float(m) for m in gpu_memory.split(",")]
    except ValueError:
        raise UsageError("--gpus and --gpu-memory take comma-separated numbers, e.g. --gpus 1,2,4,8") from None
    c = meta_counts(model)
    typer.echo(f"{model}: {c.total / 1e9:.2f} B parameters, {c.trainable / 1e9:.3f} B trainable under its default "
               f"policy; model states per GPU in GiB (bf16 frozen, fp32 trainable + gradients + AdamW; activations extra)")
    typer.echo(f"{'engine':<24}" + "".join(f"{f'{n} GPU' + ('s' if n > 1 else ''):>10}" for n in counts))
    for e in ENGINES:
        typer.echo(f"{ENGINE_NAMES[e]:<24}" + "".join(f"{states_gib(c, n, e):10.1f}" for n in counts))
    for gib in sizes:
        fit = [f"{ENGINE_NAMES[e]} {n}" for e in ENGINES for n in [fewest_gpus(c, e, gib) or 'none']]
        typer.echo(f"fewest {gib:g} GiB GPUs (states within 80%): " + ", ".join(fit))
