"""VL-ICL Bench's data folder for evaluation (given or downloaded) and its demonstration selection.

The records are read by ``data.sources.vlicl`` (the published layout, one-line errors), shared with
``symdpo data build --source vlicl``.

Demonstrations are chosen per query as VL-ICL's ``utils/ICL_utils.py::select_demonstration`` does: n random
support records (the operator tasks show the answer of the query's own operator); open_mi builds a 2-way
episode from the query's *own* support images, n per class; matching_mi shows n support couples as
``same, diff, same, diff, ...``. Each query draws from its own seeded RNG (see ``eval.plan``), so the demo
sets follow VL-ICL's distribution but not its exact draws (those depend on its global RNG's history).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from symdpo.data.sources.vlicl import DOWNLOAD_HINT, FOLDERS, HUB_ID, OPERATOR_INDEX, VLICLRecord, read_vlicl
from symdpo.eval.errors import EvalError

__all__ = ["FOLDERS", "VLICLRecord", "check_shots", "read_vlicl", "resolve_root", "select_demos"]

OPEN_MI_QUESTION = "This is a"  # the question of every open_mi demonstration (select_demonstration)
OPEN_MI_MAX_SHOTS = 5  # each class of an open_mi query has 5 support images


# --- the data folder ----------------------------------------------------------------------------------------



def resolve_root(value: str | None, task: str) -> Path:
    """Return the VL-ICL data folder of ``--vlicl-data`` (a folder, or the hub id: downloaded and unzipped)."""
    if not value:
        raise EvalError(f"task {task} needs --vlicl-data: the VL-ICL folder holding {FOLDERS[task]}/query.json; "
                        + DOWNLOAD_HINT)
    path = Path(value)
    if path.is_dir():
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", value) and not path.exists():
        return download(value, FOLDERS[task])
    raise EvalError(f"--vlicl-data {value}: not a folder; give the VL-ICL folder (or the hub id {HUB_ID}); "
                    + DOWNLOAD_HINT)


@functools.cache  # one snapshot per process: every split of every task reads it
def download(repo_id: str, folder: str) -> Path:
    """Return the local snapshot of ``repo_id`` with ``folder``'s JSON files and unzipped images (needs the hub)."""
    import zipfile

    try:
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=[f"{folder}/*"]))
    except Exception as e:  # offline, unknown repo, no access: one line saying so
        raise EvalError(f"--vlicl-data {repo_id}: could not download from the Hugging Face hub "
                        f"({type(e).__name__}); " + DOWNLOAD_HINT + ", then give its folder") from None
    for split in ("support", "query"):  # as unzip.sh: {folder}/{split}.zip -> {folder}/{split}/...
        archive = root / folder / f"{split}.zip"
        if archive.exists() and not (root / folder / split).is_dir():
            with zipfile.ZipFile(archive) as z:
                z.extractall(root / folder)
    return root


# --- demonstration selection --------------------------------------------------------------------------------


def check_shots(task: str, shots: int, pool: Sequence[VLICLRecord], queries: Sequence[VLICLRecord]) -> None:
    """Raise an EvalError when ``shots`` cannot be shown (open_mi: the query's images per class; else: the pool)."""
    if FOLDERS[task] == "open_mi":
        have = min((len(paths) for q in queries for _, paths in q.class_images), default=OPEN_MI_MAX_SHOTS)
        if shots > have:
            raise EvalError(f"{task}: {shots} shots, but an open_mi query has {have} support images per class; "
                            f"use --shots up to {have} (VL-ICL uses 0,1,2,4,5)")
    elif shots > len(pool):
        raise EvalError(f"{task}: {shots} shots but the support pool has {len(pool)} records "
                        f"(support.json, --query-set-size); lower the shots")


def select_demos(task: str, rng: random.Random, pool: Sequence[VLICLRecord], query: VLICLRecord,
                 shots: int) -> list[VLICLRecord]:
    """Return the demonstrations VL-ICL shows before ``query`` at ``shots`` shots, in prompt order."""
    folder = FOLDERS[task]
    if shots == 0:
        return []
    if folder == "open_mi":
        own = dict(query.class_images)
        other = rng.choice([c for c in query.classes if c != query.answer])
        order = [query.answer, other] if rng.random() < 0.5 else [other, query.answer]  # VL-ICL's coin flip
        return [VLICLRecord(f"{query.id}/support/{cls}/{i}", (own[cls][i],), OPEN_MI_QUESTION, cls)
                for i in range(shots) for cls in order]
    picked = rng.sample(list(pool), shots)
    if folder == "matching_mi":
        return [sub for rec in picked for sub in rec.pair]  # same_1, diff_1, same_2, diff_2, ...
    if folder.startswith("operator_induction"):
        k = OPERATOR_INDEX[query.operator]
        return [replace(rec, answer=rec.answer[k]) for rec in picked]
    return picked
