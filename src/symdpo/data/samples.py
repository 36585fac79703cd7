"""A few items of a source copied out as plain files: images to try ``symdpo infer`` (or the app) on."""

from __future__ import annotations

import shutil
from pathlib import Path

from symdpo.atomic import apply_umask, write_text
from symdpo.data.build import open_source
from symdpo.data.errors import DataError
from symdpo.data.options import BuildOptions
from symdpo.data.paths import resolve_inside


def export_samples(opts: BuildOptions, out_dir: str | Path, n: int) -> list[tuple[Path, str, str]]:
    """Copy the images of the source's first ``n`` examples (one per image) to ``out_dir``; return (image, question, answer).

    The images are named ``0.png``, ``1.png``, ... (their own extension) and listed in ``samples.tsv``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "is a file: give a folder for the samples")
    rows, seen = [], set()
    examples, root = open_source(opts)
    for ex in examples:
        if ex.image in seen:
            continue
        seen.add(ex.image)
        src = resolve_inside(root, ex.image)
        if not src.is_file():
            raise DataError(src, "image file not found (check --image-root)")
        out_dir.mkdir(parents=True, exist_ok=True)
        dst = out_dir / f"{len(rows)}{src.suffix.lower()}"
        shutil.copyfile(src, dst)
        apply_umask(dst)
        rows.append((dst, getattr(ex, "question", ""), getattr(ex, "answer", None) or ex.captions[0]))
        if len(rows) == n:
            break
    if not rows:
        raise DataError(opts.source, "no examples to export: check --split and --question-regex")
    write_text(out_dir / "samples.tsv", "image\tquestion\tanswer\n"
               + "".join(f"{p.name}\t{q}\t{a}\n" for p, q, a in rows))
    return rows
