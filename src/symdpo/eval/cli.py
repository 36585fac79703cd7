"""``symdpo eval``: run an evaluation, merge a sharded one, compare two runs.

A bad option value ends in one ``error: ...`` line and exit code 2, other input problems in one line and exit
code 1 (``symdpo.errors``); options are checked before a model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from symdpo.boundary import GuardedGroup
from symdpo.cli_defaults import config_option, given
from symdpo.eval.config import DEMO_IMAGE_MODES, QUERY_IMAGE_MODES, EvalConfig

app = typer.Typer(cls=GuardedGroup, help="Few-shot multimodal in-context evaluation (OpenFlamingo protocol).", no_args_is_help=True)


def _split(value: str) -> list[str]:
    """Return the comma-separated items of ``value``."""
    return [v.strip() for v in value.split(",") if v.strip()]


# EvalConfig's fields that are not spelled like their option
_OPTION_OF_FIELD = {"tasks": "--task", "demo_selection": "--demos", "paths": "--annotations/--questions"}


def _device(device: str | None) -> str:
    """Return a device this torch can use: ``device`` checked, or cuda when present, else cpu."""
    import torch

    from symdpo.errors import UsageError

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UsageError(f"--device: {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this torch build sees no CUDA GPU (torch {torch.__version__}); "
                         "use --device cpu or install a CUDA build of torch")
    if kind == "cuda" and torch.device(device).index is not None and torch.device(device).index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def _dtype(dtype: str | None) -> str | None:
    """Return ``dtype`` if torch has a floating dtype of that name, else raise a UsageError."""
    import torch

    from symdpo.errors import UsageError

    if dtype is not None and not (isinstance(getattr(torch, dtype, None), torch.dtype)
                                  and getattr(torch, dtype).is_floating_point):
        raise UsageError(f"--dtype: {dtype!r} is not a torch floating dtype; use float32, bfloat16 or float16")
    return dtype


def _load_model(name: str, dtype: str | None, device: str | None) -> tuple[Any, dict[str, Any]]:
    """Return the model (moved to ``device``) and the description saved with the run."""
    from symdpo.models.registry import load_model

    device = _device(device)
    model = load_model(name, dtype=_dtype(dtype))
    model.module.to(device)
    model.train(False)
    info = {"name": name, "class": type(model).__name__, "family": model.family, "source": model.source,
            "dtype": dtype, "device": device, "parameters": sum(p.numel() for p in model.module.parameters())}
    return model, info


def _shot_counts(shots: str | None) -> list[int] | None:
    """Return the shot counts of ``--shots`` ('0,4,8'), None if not given; anything but integers is a UsageError."""
    from symdpo.errors import UsageError

    if shots is None:
        return None
    try:
        return [int(s) for s in _split(shots)]
    except ValueError:
        raise UsageError(f"--shots must be comma-separated integers, got {shots!r}") from None


def _conditions(demo_images: str | None, query_image: str | None, demo_labels: str | None, vary: str | None,
                ood_images: str | None, diagnostics: bool) -> dict[str, Any]:
    """Return the image and label condition fields given; with ``diagnostics``, every condition one at a time."""
    from symdpo.errors import UsageError
    from symdpo.eval.labels import LABEL_MODES

    lists = given(demo_images=demo_images, query_image=query_image, demo_labels=demo_labels)
    fields = {name: _split(value) for name, value in lists.items()} | given(vary=vary)
    if not diagnostics:
        return fields
    defaults = {name: field.default for name, field in EvalConfig.model_fields.items()}
    altered = [f"--{name.replace('_', '-')}" for name in lists if fields[name] != defaults[name]]
    if altered or fields.get("vary", defaults["vary"]) != defaults["vary"]:
        raise UsageError(f"--diagnostics runs every condition; drop {', '.join(altered) or '--vary'} or drop --diagnostics")
    if not ood_images:
        typer.echo("--diagnostics: no --ood-images folder given, so the out-of-distribution demo images are not run",
                   err=True)
    return {"demo_images": [m for m in DEMO_IMAGE_MODES if m != "ood" or ood_images],
            "query_image": list(QUERY_IMAGE_MODES), "demo_labels": list(LABEL_MODES), "vary": "each"}


def _checked_config(out: Path, **fields: Any) -> EvalConfig:
    """Return the run's EvalConfig after checking its tasks, run directory and retrieval encoder (before any model)."""
    from pydantic import ValidationError

    from symdpo.errors import UsageError, validation_message
    from symdpo.eval.errors import EvalError
    from symdpo.eval.runner import check_run_dir, task_or_error

    try:
        config = EvalConfig(**fields)
        for name in config.tasks:
            task_or_error(name)
        check_run_dir(out)
    except ValidationError as e:
        raise UsageError(validation_message(e, _OPTION_OF_FIELD)) from None
    except EvalError as e:
        raise UsageError(str(e)) from None
    if config.demo_selection != "random":
        from symdpo.data.retrieval import check_retrieval_encoder

        check_retrieval_encoder(config.retrieval_encoder)  # a missing encoder fails in seconds, before the model loads
    return config


def _shard_and_model(model: str, dtype: str | None, device: str | None, rank: int | None, world_size: int | None,
                     threads: int | None, compile: bool) -> tuple[Any, Any, dict[str, Any]]:
    """Return this process's shard, the model it evaluates (on its device, compiled if asked) and its description."""
    from symdpo.eval.distributed import current_shard

    if threads:
        import torch

        torch.set_num_threads(threads)
    shard = current_shard(rank, world_size)
    lmm, info = _load_model(model, dtype, device or (str(shard.state.device) if shard.state else None))
    if compile:
        from symdpo.models.compiled import compile_layers

        compile_layers(lmm)
    return shard, lmm, info


def _finish_run(stats: Any, shard: Any, out: Path) -> None:
    """Report this shard's work; when the run is whole, merge it and print results.md (interrupted: exit 3)."""
    from symdpo.eval.merge import merge_run

    typer.echo(f"rank {shard.rank}/{shard.world}: {stats.written} new predictions, {stats.skipped} already done, "
               f"{stats.seconds:.1f}s, {stats.images_encoded} images encoded", err=True)
    if stats.interrupted:
        raise typer.Exit(3)
    shard.finish()
    if shard.world > 1 and shard.state is None:
        typer.echo(f"shard {shard.rank} done; when every shard is, run: symdpo eval merge {out}", err=True)
    elif shard.rank == 0:
        merge_run(out)
        typer.echo((out / "results.md").read_text())


@app.command()
def run(
    model: str = typer.Option(..., help="preset name (e.g. tiny, openflamingo-3b-instruct) or a saved model folder"),
    task: str = typer.Option(..., help="task name(s), comma-separated: coco, flickr30k, vqav2, okvqa, textvqa, easyvqa, "
                                       "vlicl-* (`symdpo eval tasks` lists them)"),
    out: Path = typer.Option(..., help="run directory (rerun with the same one to resume)"),
    shots: str | None = config_option(EvalConfig, "shots", help="comma-separated shot counts"),
    trials: int | None = config_option(EvalConfig, "trials", help="trials (seeds seed, seed+1, ...): mean ± std"),
    seed: int | None = config_option(EvalConfig, "seed"),
    num_samples: int | None = typer.Option(None, help="evaluate a seeded random subset of this many items"),
    query_set_size: int | None = config_option(EvalConfig, "query_set_size",
                                               help="demonstration pool drawn from train per trial"),
    demos: str | None = config_option(EvalConfig, "demo_selection", "--demos", help="demonstration selection: random, "
                                      "rices (most similar images, as OpenFlamingo) or rices-text (MMICES: those reranked by text similarity)"),
    retrieval_encoder: str | None = config_option(EvalConfig, "retrieval_encoder", help="RICES image/text encoder, independent "
                                                  "of the model: CLIP-like hub id, save_pretrained folder, or tiny-clip"),
    mmices_k: int | None = typer.Option(None, help="rices-text: images kept by image similarity before the text "
                                                   "rerank (default 4 x shots)"),
    demo_images: str | None = config_option(EvalConfig, "demo_images", help="demonstration images, comma-separated: real, "
                                            "blank, shuffled, ood (from --ood-images), none (text-only demonstrations)"),
    query_image: str | None = config_option(EvalConfig, "query_image", help="query image, comma-separated: real, "
                                            "blank, none (marker removed)"),
    demo_labels: str | None = config_option(EvalConfig, "demo_labels", help="demonstration answers/captions, "
                                            "comma-separated: real, random-words, random-strings, symbols, none"),
    ood_images: str | None = typer.Option(None, help="folder of out-of-distribution images for --demo-images ood"),
    vary: str | None = config_option(EvalConfig, "vary", help="product: every combination of the condition values; "
                                     "each: the all-real condition plus each altered value alone"),
    diagnostics: bool = typer.Option(False, "--diagnostics", help="the whole visual-reliance matrix: every demo-image "
                                     "(ood with --ood-images), query-image and label condition, one at a time"),
    batch_size: int | None = config_option(EvalConfig, "batch_size"),
    annotations: str = typer.Option(None, help="evaluated split: annotations / TextVQA / Karpathy JSON"),
    questions: str = typer.Option(None, help="evaluated split: VQA questions JSON"),
    train_annotations: str = typer.Option(None, help="demonstration split annotations (Karpathy: defaults to --annotations)"),
    train_questions: str = typer.Option(None, help="demonstration split VQA questions JSON"),
    image_root: str = typer.Option(None, help="folder the annotation image paths are relative to"),
    train_image_root: str = typer.Option(None, help="image folder of the demonstration split (default: --image-root)"),
    image_template: str = typer.Option(None, help="image path template, e.g. '{subtype}/COCO_{subtype}_{image_id:012d}.jpg'"),
    hf_dataset: str = typer.Option(None, help="evaluated split as a Hugging Face dataset: save_to_disk folder, "
                                              "parquet file/folder, or hub id (e.g. lmms-lab/VQAv2)"),
    hf_split: str = typer.Option(None, help="split of --hf-dataset (e.g. validation)"),
    train_hf_dataset: str = typer.Option(None, help="demonstration split as a Hugging Face dataset"),
    train_hf_split: str = typer.Option(None, help="split of --train-hf-dataset (e.g. train)"),
    vlicl_data: str = typer.Option(None, help="VL-ICL tasks: the folder holding {task}/query.json, {task}/support.json "
                                              "and the unzipped images, or the hub id ys-zong/VL-ICL (docs/vl-icl.md)"),
    task_description: str | None = config_option(EvalConfig, "task_description", help="VL-ICL tasks: the task "
                                                 "description before the demonstrations: nothing, concise or detailed"),
    vlicl_fixes: str | None = config_option(EvalConfig, "vlicl_fixes", help="VL-ICL tasks: scoring fixes, comma-separated "
                                            "(default none: the published rules): signed-numbers, strict-yes-no, keep-decimals, strip-after-cut"),
    feature_cache: str = typer.Option(None, help="folder keeping vision features between runs"),
    prompt_style: str = typer.Option(None, help="native (the model's own / chat format) or openflamingo; "
                                                "default: native for chat/instruct models, else openflamingo"),
    dtype: str = typer.Option(None, help="model dtype (float32, bfloat16, ...)"),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda when present; the launcher's under accelerate)"),
    rank: int = typer.Option(None, help="this process's shard (default: from accelerate / WORLD_SIZE)"),
    world_size: int = typer.Option(None, help="number of shards"),
    threads: int = typer.Option(None, help="torch CPU threads (default: torch's; 1 is often faster on a busy CPU)"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model's layers (dynamic shapes; "
                                 "worth it on a GPU for long runs, the first batches pay the compilation)"),
    progress: bool = typer.Option(True),
    stop_after: int = typer.Option(None, hidden=True, help="stop after writing this many rows (resume tests)"),
) -> None:
    """Evaluate a model; writes predictions, results.json, results.md and shot curves into OUT."""
    from symdpo.eval.runner import run_eval

    paths = dict(annotations=annotations, questions=questions, train_annotations=train_annotations,
                 train_questions=train_questions, image_root=image_root, train_image_root=train_image_root,
                 image_template=image_template, hf_dataset=hf_dataset, hf_split=hf_split,
                 train_hf_dataset=train_hf_dataset, train_hf_split=train_hf_split, vlicl_data=vlicl_data)
    shot_counts = _shot_counts(shots)  # before the conditions: a bad --shots is reported first
    conditions = _conditions(demo_images, query_image, demo_labels, vary, ood_images, diagnostics)
    options = given(shots=shot_counts, trials=trials, seed=seed, num_samples=num_samples, query_set_size=query_set_size,
                    demo_selection=demos, retrieval_encoder=retrieval_encoder, mmices_k=mmices_k, ood_images=ood_images,
                    batch_size=batch_size, feature_cache=feature_cache, prompt_style=prompt_style,
                    task_description=task_description, vlicl_fixes=None if vlicl_fixes is None else _split(vlicl_fixes))
    config = _checked_config(out, model=model, tasks=_split(task), paths={k: v for k, v in paths.items() if v},
                             **conditions, **options)
    shard, lmm, info = _shard_and_model(model, dtype, device, rank, world_size, threads, compile)
    stats = run_eval(config, lmm, out, model_info=info, rank=shard.rank, world=shard.world, stop_after=stop_after,
                     progress=progress)
    _finish_run(stats, shard, out)


@app.command()
def merge(run_dir: Path = typer.Argument(..., help="run directory whose shards have all finished")) -> None:
    """Score a (sharded) run from its predictions files and write its reports."""
    from symdpo.eval.merge import merge_run

    merge_run(run_dir)
    typer.echo((run_dir / "results.md").read_text())


@app.command()
def compare(
    run_a: Path = typer.Argument(...),
    run_b: Path = typer.Argument(...),
    latex: Path | None = typer.Option(None, "--latex", help="also write the comparison as a LaTeX (booktabs) table"),
) -> None:
    """Print two runs' scores side by side: B - A and whether it exceeds the trials' spread (a t-test)."""
    from symdpo.eval.report.compare import compare as compare_runs

    compare_runs(run_a, run_b, latex_path=latex)


@app.command("tasks")
def tasks_command() -> None:
    """List the registered tasks."""
    from symdpo.eval.tasks import list_tasks

    typer.echo("\n".join(list_tasks()))


@app.command("symbols")
def symbols_command(
    model: str = typer.Option(..., help="preset name or saved model directory"),
    probes: Path = typer.Option(..., help="symbol records from `symdpo data build --icl-fraction 0` on a held-out split"),
    demo_images: str = typer.Option("real,blank", help="real and/or blank demonstration images"),
    out: Path | None = typer.Option(None, help="write the scores here as JSON"),
) -> None:
    """Symbol-ICL accuracy: how often the model picks the right symbol, with real and blank demo images."""
    from symdpo.atomic import write_text
    from symdpo.data.manifest import manifest_image_root
    from symdpo.data.recordio import read_records
    from symdpo.errors import UsageError
    from symdpo.eval.errors import EvalError
    from symdpo.eval.symbol_icl import symbol_accuracy

    conditions = _split(demo_images)
    unknown = [c for c in conditions if c not in ("real", "blank")]
    if unknown or not conditions:
        raise UsageError(f"--demo-images: {','.join(unknown) or demo_images!r} is not real or blank "
                         "(give real, blank or real,blank)")
    records = list(read_records(probes))  # a missing or bad file fails before the model loads
    if not records:
        raise EvalError(f"{probes}: no probe records; build them with `symdpo data build --icl-fraction 0 ...`")
    root = manifest_image_root(probes)
    if root is None:
        raise EvalError(f"{probes}: no manifest beside it names the image folder; rebuild the probes with "
                        "`symdpo data build`")
    lmm, _ = _load_model(model, None, None)
    scores = {cond: symbol_accuracy(lmm, records, root, demo_images=cond) for cond in conditions}
    for cond, s in scores.items():
        typer.echo(f"symbol-ICL accuracy, {cond} demo images: {s['accuracy']:.1f}% of {s['n']} (chance {s['chance']:.1f}%)")
    if out is not None:
        write_text(out, json.dumps({"model": model, "probes": str(probes), "scores": scores}, indent=2) + "\n")
