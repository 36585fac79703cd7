"""``symdpo data``: build SymDPO / SFT record files, inspect them, export and push them (mounted by ``symdpo.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from symdpo.boundary import GuardedGroup
from symdpo.cli_defaults import config_option, given
from symdpo.data.build import build as run_build
from symdpo.data.errors import BadImageError, DataError
from symdpo.data.images import check_image
from symdpo.data.inspect import contact_sheet, describe
from symdpo.data.manifest import manifest_image_root, read_manifest
from symdpo.data.options import BuildOptions, SymbolOptions
from symdpo.data.recordio import read_records
from symdpo.errors import UsageError, validation_message

app = typer.Typer(cls=GuardedGroup, help="Build and inspect SymDPO preference / SFT data.", no_args_is_help=True)
console = Console(stderr=True)


def _weights(text: str) -> dict[str, float]:
    """Return {'text': w, ...} parsed from 'text=1,wrong_symbol=2'."""
    out = {}
    for part in filter(None, text.split(",")):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise UsageError(f"--rejected: {part!r} is not type=weight, e.g. text=1,wrong_symbol=2") from None
    return out


@app.command()
def build(
    source: str = typer.Option(..., help="vqav2 | okvqa | textvqa | easyvqa | coco | flickr30k | vlicl"),
    out: Path = typer.Option(..., help="output file: .jsonl, or .parquet"),
    annotations: Optional[Path] = typer.Option(None, help="annotations / TextVQA / Karpathy JSON file"),
    questions: Optional[Path] = typer.Option(None, help="VQAv2 / OK-VQA questions JSON file"),
    image_root: Optional[Path] = typer.Option(None, help="folder the image paths are relative to"),
    image_template: Optional[str] = typer.Option(None, help="image path template, e.g. 'train2014/{image_id}.jpg'"),
    hf_dataset: Optional[str] = typer.Option(None, help="a Hugging Face dataset instead of the JSON files: "
                                             "save_to_disk folder, parquet file/folder, or hub id"),
    hf_split: Optional[str] = typer.Option(None, help="split of --hf-dataset (e.g. train)"),
    split: Optional[str] = config_option(BuildOptions, "split", help="easyvqa split, or Karpathy split(s): "
                                         "'train,restval', 'all'"),
    vlicl_data: Optional[Path] = typer.Option(None, help="vlicl: the VL-ICL folder (as `eval run --vlicl-data`); "
                                              "only {task}/support.json and its images are read"),
    vlicl_task: Optional[str] = typer.Option(None, help="vlicl: open_mi | operator_induction | clevr | textocr "
                                             "(or the eval name, e.g. vlicl-clevr)"),
    mode: Optional[str] = config_option(BuildOptions, "mode", help="preference (DPO pairs) | sft"),
    seed: Optional[int] = config_option(BuildOptions, "seed"),
    max_records: Optional[int] = typer.Option(None, help="stop after this many records"),
    question_regex: Optional[str] = typer.Option(None, help="keep only questions matching this regular expression"),
    k_min: Optional[int] = config_option(SymbolOptions, "k_min", help="fewest demonstrations per context"),
    k_max: Optional[int] = config_option(SymbolOptions, "k_max", help="most demonstrations per context"),
    icl_fraction: Optional[float] = config_option(SymbolOptions, "icl_fraction",
                                                  help="share of ordinary (text-answer) contexts"),
    rejected: Optional[str] = config_option(SymbolOptions, "rejected_weights", help="rejected-type weights"),
    pairs_per_query: Optional[str] = config_option(SymbolOptions, "pairs_per_query",
                                                   help="one (type drawn by weight) | all (one pair per type)"),
    wrong_symbol: Optional[str] = config_option(SymbolOptions, "wrong_symbol",
                                                help="shortcut (last/most frequent demo) | random"),
    symbols_file: Optional[Path] = typer.Option(None, help="extra symbols, one per line"),
    builtin_symbols: Optional[bool] = config_option(SymbolOptions, "builtin_symbols",
                                                    help="use the built-in pseudo-word symbols"),
    sft_symbol_fraction: Optional[float] = config_option(BuildOptions, "sft_symbol_fraction",
                                                         help="sft mode on VQA: share of symbol sequences"),
    sft_symbol_images: Optional[str] = config_option(BuildOptions, "sft_symbol_images", help="sft symbol "
                                                     "sequences' images: matching | unrelated (random other "
                                                     "images: the symbol is copied from the text)"),
    sft_copy_fraction: Optional[float] = config_option(BuildOptions, "sft_copy_fraction", help="sft mode on VQA: "
                                                       "share of text-copying sequences (a demonstration's "
                                                       "random words, repeated by the target)"),
    demos: Optional[str] = config_option(BuildOptions, "demos", help="demonstrations from the query's question "
                                         "group: random | rices (the images most similar to the query's, most "
                                         "similar last)"),
    retrieval_encoder: Optional[str] = config_option(BuildOptions, "retrieval_encoder", help="rices: CLIP-like "
                                                     "hub id, save_pretrained folder, or tiny-clip"),
    feature_cache: Optional[Path] = typer.Option(None, help="rices: folder keeping the image embeddings"),
    check_images: Optional[str] = config_option(BuildOptions, "check_images", help="none | header | decode"),
    on_bad_image: Optional[str] = config_option(BuildOptions, "on_bad_image",
                                                help="error | skip (skips are counted in the manifest)"),
    strict_extension: Optional[bool] = config_option(BuildOptions, "strict_extension",
                                                     help="treat content/extension mismatch as a bad image"),
) -> None:
    """Build a record file and its manifest (``<out>.manifest.json``), written atomically."""
    try:
        symbols = SymbolOptions(**given(
            k_min=k_min, k_max=k_max, icl_fraction=icl_fraction,
            rejected_weights=None if rejected is None else _weights(rejected), pairs_per_query=pairs_per_query,
            wrong_symbol=wrong_symbol, symbols_file=symbols_file, builtin_symbols=builtin_symbols))
        opts = BuildOptions(source=source, out=out, symbols=symbols, **given(
            annotations=annotations, questions=questions, image_root=image_root, image_template=image_template,
            hf_dataset=hf_dataset, hf_split=hf_split, split=split, vlicl_data=vlicl_data, vlicl_task=vlicl_task,
            mode=mode, seed=seed, max_records=max_records, question_regex=question_regex,
            sft_symbol_fraction=sft_symbol_fraction, sft_symbol_images=sft_symbol_images,
            sft_copy_fraction=sft_copy_fraction, check_images=check_images, on_bad_image=on_bad_image,
            strict_extension=strict_extension, demos=demos, retrieval_encoder=retrieval_encoder,
            feature_cache=feature_cache))
    except ValidationError as e:
        raise UsageError(validation_message(e, {"rejected_weights": "--rejected"})) from None
    if opts.demos == "rices":
        from symdpo.data.retrieval import check_retrieval_encoder

        check_retrieval_encoder(opts.retrieval_encoder)  # a missing encoder fails before the source is read
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("building", total=None)
        manifest = run_build(opts, progress=lambda done, total: bar.update(task, completed=done, total=total))
    c = manifest["counts"]
    typer.echo(f"wrote {c['records']} records to {out} (kinds {c['by_kind']}, rejected {c['by_rejected_type']}, "
               f"bad images skipped {manifest['bad_images']['skipped']})")


@app.command()
def samples(
    source: str = typer.Option(..., help="vqav2 | okvqa | textvqa | easyvqa | coco | flickr30k"),
    out: Path = typer.Option(..., help="folder to write the images and samples.tsv into"),
    n: int = typer.Option(4, min=1, help="how many images"),
    split: str = typer.Option("test", help="easyvqa split, or Karpathy split(s)"),
    annotations: Optional[Path] = typer.Option(None, help="annotations / TextVQA / Karpathy JSON file"),
    questions: Optional[Path] = typer.Option(None, help="VQAv2 / OK-VQA questions JSON file"),
    image_root: Optional[Path] = typer.Option(None, help="folder the image paths are relative to"),
    image_template: Optional[str] = typer.Option(None, help="image path template"),
    question_regex: Optional[str] = typer.Option(None, help="keep only questions matching this regular expression"),
) -> None:
    """Copy a few images of a source, with their question and answer, to try `symdpo infer` on."""
    from symdpo.data.samples import export_samples

    try:
        opts = BuildOptions(source=source, out=out / "samples.jsonl", annotations=annotations, questions=questions,
                            image_root=image_root, image_template=image_template, split=split, mode="sft",
                            question_regex=question_regex)
    except ValidationError as e:
        raise UsageError(validation_message(e)) from None
    for path, question, answer in export_samples(opts, out, n):
        typer.echo(f"{path}\t{question}\t{answer}")


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="a .jsonl or .parquet record file"),
    n: int = typer.Option(3, help="how many records to print"),
    sheet: Optional[Path] = typer.Option(None, help="PNG contact sheet of the first record (default FILE.sample.png)"),
    image_root: Optional[Path] = typer.Option(None, help="image folder (default: from the manifest)"),
) -> None:
    """Validate every record of FILE and that its images open, print a few rendered samples, draw one."""
    manifest = read_manifest(file)
    root = image_root or manifest_image_root(file)
    shown, total, first, images = [], 0, None, set()
    for rec in read_records(file):  # a bad record raises DataError naming the file, line and field
        total += 1
        first = first or rec
        images.update(rec.images)
        if len(shown) < n:
            shown.append(rec)
    if not total:
        raise DataError(file, "no records: the file is empty")
    for rec in shown:
        typer.echo(describe(rec) + "\n")
    if root is None:
        raise DataError(file, f"{total} records valid, but no manifest beside it names the image folder: pass "
                        "--image-root to check the images")
    bad = {}
    for rel in sorted(images):
        try:
            check_image(root, rel, decode=False, strict_extension=False)
        except BadImageError as e:
            bad[rel] = e.reason
    if bad:
        rel, reason = next(iter(bad.items()))
        raise DataError(file, f"{total} records valid, but {len(bad)} of their {len(images)} images cannot be "
                        f"used under {root} (first: {rel}: {reason}); fix the folder or pass --image-root")
    typer.echo(f"{total} records, all valid; their {len(images)} images open under {root}")
    if manifest:
        typer.echo(f"manifest counts: {manifest['counts']}")
    path = contact_sheet(first, root, sheet or Path(f"{file}.sample.png"))
    typer.echo(f"contact sheet: {path}")


@app.command()
def export(
    records: Path = typer.Argument(..., help="a preference record file (.jsonl or .parquet) of `symdpo data build`"),
    format: str = typer.Option(..., "--format", help="trl (TRL's DPOTrainer) | llamafactory (LLaMA-Factory)"),
    out: Path = typer.Option(..., "--out", help="new folder: parquet shards, save_to_disk copy, dataset card"),
    image_root: Optional[Path] = typer.Option(None, help="image folder (default: from the records' manifest)"),
    name: Optional[str] = typer.Option(None, help="dataset name in the card and dataset_info.json "
                                       "(default: symdpo_<records file stem>)"),
) -> None:
    """Export preference records to TRL's or LLaMA-Factory's preference layout, images embedded, with a card."""
    from symdpo.data.export import check_format
    from symdpo.data.export import export as run_export

    check_format(format)  # an unknown format fails before any record is read
    columns = (TextColumn("{task.description}"), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("exporting records", total=None)
        summary = run_export(records, format, out, image_root=image_root, name=name,
                             progress=lambda done: bar.update(task, completed=done))
    typer.echo(f"wrote {summary['rows']} {format} rows to {out} ({summary['shards']} parquet shard(s) in data/, "
               "a save_to_disk copy in dataset/, the card README.md)")


@app.command()
def push(
    folder: Path = typer.Argument(..., help="an export folder (the --out of `symdpo data export`)"),
    repo: str = typer.Option(..., "--repo", help="hub dataset repository id, e.g. you/symdpo-vqav2-trl"),
    private: bool = typer.Option(False, "--private", help="create the repository private"),
    message: str = typer.Option("Upload a symdpo dataset", "--message", help="the commit message"),
) -> None:
    """Upload an export (parquet shards, dataset card, manifest) to a Hugging Face Hub dataset repository."""
    from symdpo.data.export import push as push_folder

    typer.echo(f"uploaded {folder} to {push_folder(folder, repo, private=private, message=message)}")


if __name__ == "__main__":
    app()
