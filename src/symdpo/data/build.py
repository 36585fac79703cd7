"""``symdpo data build``: read a source, check its images, write records + manifest atomically."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

from symdpo.data.errors import BadImageError, DataError
from symdpo.data.images import check_image
from symdpo.data.manifest import manifest_path
from symdpo.data.options import BuildOptions
from symdpo.data.pool import VQAPool
from symdpo.data.recordio import RecordWriter, atomic_outputs, format_of
from symdpo.data.records import PreferenceRecord, Record, SFTRecord
from symdpo.data.sft import SFT_RECIPE, caption_sft_records, vqa_sft_records
from symdpo.data.sources import (
    CaptionExample,
    easyvqa_root,
    read_coco,
    read_easyvqa,
    read_flickr30k,
    read_textvqa,
    read_vqa,
)
from symdpo.data.sources.vlicl import eval_task, read_vlicl_support
from symdpo.data.symbols import RECIPE, SymbolBuilder
from symdpo.data.vocab import SymbolVocabulary, read_symbol_file

Progress = Callable[[int, int], None]
MANIFEST_VERSION = 1


def open_source(opts: BuildOptions) -> tuple[Iterator, Path]:
    """Return (an iterator over the source's examples, the folder their image paths are relative to)."""
    if opts.hf_dataset is not None:  # a Hugging Face dataset: its embedded images have a folder of their own
        from symdpo.data.sources.hf import read_hf

        records, root = read_hf(opts.hf_dataset, opts.source, split=opts.hf_split, image_root=opts.image_root)
        return _keep_questions(opts, iter(records)), root
    if opts.source == "vlicl":  # support.json only: query.json is the evaluated set
        return _keep_questions(opts, iter(read_vlicl_support(opts.vlicl_data, opts.vlicl_task))), opts.vlicl_data
    root = opts.image_root if opts.image_root is not None else easyvqa_root(opts.split)
    return _keep_questions(opts, _read_files(opts)), root


def _read_files(opts: BuildOptions) -> Iterator:
    """Return an iterator over the examples of the source's annotation files (VQAExample or CaptionExample)."""
    splits = [s for s in opts.split.split(",") if s]
    readers = {
        "vqav2": lambda: read_vqa(opts.questions, opts.annotations, image_template=opts.image_template),
        "okvqa": lambda: read_vqa(opts.questions, opts.annotations, image_template=opts.image_template),
        "textvqa": lambda: read_textvqa(opts.annotations, image_template=opts.image_template),
        "easyvqa": lambda: read_easyvqa(opts.split),
        "coco": lambda: read_coco(opts.annotations, splits=None if opts.split == "all" else splits),
        "flickr30k": lambda: read_flickr30k(opts.annotations, splits=None if opts.split == "all" else splits),
    }
    return readers[opts.source]()


def _keep_questions(opts: BuildOptions, examples: Iterator) -> Iterator:
    """Return the examples whose question matches ``--question-regex`` (all of them without one)."""
    if not opts.question_regex:
        return examples
    # e.g. "^what" keeps the open questions of easy-VQA (colour, shape), which need the image to answer
    pattern = re.compile(opts.question_regex)
    return (ex for ex in examples if getattr(ex, "question", None) and pattern.search(ex.question))


def check_images(root: Path, images: list[str], opts: BuildOptions, progress: Progress | None) -> dict[str, BadImageError]:
    """Return {image: error} for the unusable images; raise the first one when ``on_bad_image`` is 'error'."""
    bad: dict[str, BadImageError] = {}
    if opts.check_images == "none":
        return bad
    for n, rel in enumerate(images, 1):
        try:
            check_image(root, rel, decode=opts.check_images == "decode", strict_extension=opts.strict_extension)
        except BadImageError as e:
            if opts.on_bad_image == "error":
                raise BadImageError(root / rel, e.reason, f"{e.detail} (use --on-bad-image skip to skip it)") from None
            bad[rel] = e
        if progress and n % 1000 == 0:
            progress(n, len(images))
    return bad


def _file_entry(path: Path) -> dict:
    """Return the manifest entry of a source file: path as given, size and SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def _versions() -> dict[str, str]:
    """Return the versions that can change the output bytes."""
    out = {"python": platform.python_version()}
    for pkg in ("symdpo", "numpy", "pydantic", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _records(opts: BuildOptions, examples: Iterator, root: Path, progress: Progress | None, counts: Counter[str],
             info: dict) -> tuple[type[Record], Iterator[Record], int]:
    """Return (record type, record iterator, number of queries) after reading and checking the source."""
    if opts.source in ("coco", "flickr30k"):
        items: list[CaptionExample] = list(examples)
        bad = check_images(root, sorted({ex.image for ex in items}), opts, progress)
        info.update(examples=len(items), images=len({ex.image for ex in items}), bad=bad)
        items = [ex for ex in items if ex.image not in bad]
        counts["skipped_examples_bad_image"] = info["examples"] - len(items)
        return SFTRecord, caption_sft_records(opts.source, items, opts.symbols, opts.seed, counts), len(items)
    pool = VQAPool(_record_source(opts), examples)
    bad = check_images(root, list(pool.images), opts, progress)
    info.update(examples=len(pool), images=len(pool.images), bad=bad)
    if bad:
        bad_ids = np.asarray([i for i, p in enumerate(pool.images) if p in bad], np.int32)
        pool = pool.keep(~np.isin(pool.image, bad_ids))
    counts["skipped_examples_bad_image"] = info["examples"] - len(pool)
    user = read_symbol_file(opts.symbols.symbols_file) if opts.symbols.symbols_file else None
    vocab = SymbolVocabulary.for_source(pool.answers, pool.questions, user=user, builtin=opts.symbols.builtin_symbols)
    info["vocabulary"] = vocab.describe()
    parts = _context_pools(opts, pool)
    # one seed per part; a single part keeps ``seed`` itself, so the other sources' files are unchanged
    seeds = [opts.seed + 1_000_003 * i for i in range(len(parts))]
    if opts.mode == "sft":
        return SFTRecord, _interleave([vqa_sft_records(part, vocab, opts.symbols, seed, opts.sft_symbol_fraction,
                                                       counts, symbol_images=opts.sft_symbol_images,
                                                       copy_fraction=opts.sft_copy_fraction)
                                       for part, seed in zip(parts, seeds, strict=True)]), len(pool)
    features = None
    if opts.demos == "rices":  # one row per image of the pool's table, which every part shares (VQAPool.keep)
        from symdpo.data.retrieval import embed_images, load_retrieval_encoder

        encoder = load_retrieval_encoder(opts.retrieval_encoder)
        features = embed_images(encoder, root, list(pool.images), cache_dir=opts.feature_cache)
    builders = [SymbolBuilder(part, vocab, opts.symbols, seed, counts=counts, features=features)
                for part, seed in zip(parts, seeds, strict=True)]
    return PreferenceRecord, _interleave([b.records() for b in builders]), len(pool)


def _record_source(opts: BuildOptions) -> str:
    """Return the records' ``source``: the source's name, or for VL-ICL the eval task it trains for (vlicl-clevr)."""
    return eval_task(opts.vlicl_task) if opts.source == "vlicl" else opts.source


def _context_pools(opts: BuildOptions, pool: VQAPool) -> list[VQAPool]:
    """Return the pools contexts are drawn within: one per operator for VL-ICL's operator induction (a context
    shows one operator, as VL-ICL's demonstrations show the query's), else the whole pool."""
    if opts.source == "vlicl" and opts.vlicl_task == "operator_induction":
        return [part for t in range(len(pool.qtypes)) if len(part := pool.keep(pool.qtype == t))]
    return [pool]


def _interleave(streams: list[Iterator[Record]]) -> Iterator[Record]:
    """Yield the records of ``streams`` in turn, one from each (so --max-records keeps every part)."""
    live = list(streams)
    while live:
        for stream in list(live):
            rec = next(stream, None)
            if rec is None:
                live.remove(stream)
            else:
                yield rec


def build(opts: BuildOptions, *, progress: Progress | None = None) -> dict:
    """Build the records described by ``opts``; return the manifest (also written beside the output)."""
    examples, root = open_source(opts)
    counts: Counter[str] = Counter()
    info: dict = {}
    model, records, n_queries = _records(opts, examples, root, progress, counts, info)
    fmt = format_of(opts.out)
    total = min(n_queries, opts.max_records) if opts.max_records else n_queries
    n = 0
    with atomic_outputs(opts.out, manifest_path(opts.out)) as (tmp, tmp_manifest):
        writer = RecordWriter(tmp, fmt, model)
        try:
            for rec in records:
                writer.write(rec)
                n += 1
                if progress and n % 1000 == 0:
                    progress(n, total)
                if opts.max_records and n >= opts.max_records:
                    break
        finally:
            writer.close()
        if n == 0:  # raised inside the block: nothing is written
            raise DataError(opts.out, f"no records to write: {_why_empty(opts, info, counts)}")
        manifest = _manifest(opts, root, fmt, model, n, counts, info)
        tmp_manifest.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if progress:
        progress(total, total)
    return manifest


def _why_empty(opts: BuildOptions, info: dict, counts: Counter[str]) -> str:
    """Return what left a build with no records, and what to change."""
    if not info.get("examples"):
        if opts.question_regex:
            return f"--question-regex {opts.question_regex!r} matched no question of the source; loosen it"
        return "the source has no examples; check --split and the annotation files"
    if opts.source == "vlicl" and counts["skipped_examples_bad_image"] < info["examples"]:
        return (f"no query of {opts.vlicl_task}/support.json has another support record with its answer (needed "
                f"to show it in a context, with --k-min {opts.symbols.k_min} demonstrations); VL-ICL's textocr "
                "texts rarely repeat: build from operator_induction, clevr or open_mi")
    if counts["skipped_examples_bad_image"] == info["examples"]:
        return "every example's image was skipped as bad (see --check-images / --on-bad-image)"
    return (f"none of the {info['examples']} examples could be given a context (each query needs at least "
            f"--k-min {opts.symbols.k_min} demonstrations with other answers); lower --k-min or use more data")


def _manifest(opts: BuildOptions, root: Path, fmt: str, model: type[Record], n: int, counts: Counter[str],
              info: dict) -> dict:
    """Return the manifest dict (deterministic: no clocks, no absolute paths beyond what was given)."""
    files = [p for p in (opts.questions, opts.annotations) if p is not None]
    if opts.source == "vlicl":
        files = [opts.vlicl_data / opts.vlicl_task / "support.json"]
    bad: dict[str, BadImageError] = info["bad"]

    def tally(prefix: str) -> dict[str, int]:
        return {k[len(prefix):]: v for k, v in sorted(counts.items()) if k.startswith(prefix)}

    return {
        "manifest_version": MANIFEST_VERSION,
        "record_type": "preference" if model is PreferenceRecord else "sft",
        "format": fmt,
        "output": Path(opts.out).name,
        "source": {"name": opts.source, "split": "support" if opts.source == "vlicl" else opts.split,
                   "files": [_file_entry(Path(p)) for p in files], "image_root": str(root),
                   "examples": info["examples"], "images": info["images"],
                   **({"vlicl_task": opts.vlicl_task, "eval_task": eval_task(opts.vlicl_task)}
                      if opts.source == "vlicl" else {})},
        "seed": opts.seed,
        "options": opts.model_dump(mode="json"),
        "counts": {"records": n, "by_kind": tally("kind_"), "by_rejected_type": tally("rejected_"),
                   "by_context": tally("context_"), "skipped_queries_no_context": counts["skipped_no_context"],
                   "skipped_examples_bad_image": counts["skipped_examples_bad_image"]},
        "bad_images": {"check": opts.check_images, "policy": opts.on_bad_image, "skipped": len(bad),
                       "by_reason": dict(sorted(Counter(e.reason for e in bad.values()).items())),
                       "first": [{"image": k, "reason": e.reason, "message": str(e)} for k, e in sorted(bad.items())[:20]]},
        "vocabulary": info.get("vocabulary"),
        "recipe": RECIPE if model is PreferenceRecord else RECIPE + "\n" + SFT_RECIPE,
        "versions": _versions(),
    }

