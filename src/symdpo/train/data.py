"""Training examples from `symdpo data build` record files or TRL-layout preference data, and the
deterministic global batch order.

The batch order is a pure function of (seed, epoch, step): resuming needs only the step number, and every
process of a run, whatever their number, sees the same global batch at the same optimiser step.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from symdpo.data import conversations
from symdpo.data.errors import DataError
from symdpo.data.images import load_image
from symdpo.data.manifest import image_root_of
from symdpo.data.recordio import read_records
from symdpo.data.records import PreferenceRecord, render_record, render_turns
from symdpo.models.prompts import AGNOSTIC_END, OPENFLAMINGO, PromptFormat, to_interleaved
from symdpo.pixels import to_rgb


@dataclass(frozen=True)
class Example:
    """One rendered record: interleaved context, answers ending with `<|endofchunk|>`, rejected type."""

    id: str
    context: list  # text segments and image items, in reading order
    chosen: str
    rejected: str | None  # None for SFT records
    group: str  # rejected type (text, wrong_symbol, wrong_answer) or SFT kind




class RecordDataset:
    """Rendered records of one file; images are loaded (and kept) on first access."""

    def __init__(self, path: str | Path, *, image_root: str | Path | None = None, max_records: int | None = None,
                 end_of_chunk: str = AGNOSTIC_END, prompts: dict[str, PromptFormat] | None = None):
        self.path = Path(path)
        if not self.path.is_file():  # named first: a missing file also has no manifest to name its images
            what = "is a directory: give a record file" if self.path.is_dir() else "file not found"
            raise DataError(self.path, f"{what} (data.path)")
        self.image_root = image_root_of(self.path, image_root, fix="set data.image_root")
        self.records = []
        for rec in read_records(self.path):
            self.records.append(rec)
            if max_records and len(self.records) >= max_records:
                break
        if not self.records:
            raise DataError(self.path, "no records (data.path): build some with `symdpo data build`")
        self.end_of_chunk = end_of_chunk
        self.prompts = dict(prompts or OPENFLAMINGO)  # the model's formats (kind -> PromptFormat)
        self._image = lru_cache(maxsize=4096)(self._load)  # easy-VQA-sized sets stay in memory

    def _load(self, rel: str):
        return load_image(self.image_root, rel)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Example:
        rec = self.records[i]
        text, images, chosen, rejected = render_record(rec, self.prompts, end_of_chunk=self.end_of_chunk)
        marker = self.prompts["vqa"].image_marker
        return Example(rec.id, to_interleaved(text, [self._image(p) for p in images], marker), chosen, rejected,
                       self.group(i))

    def render(self, i: int) -> tuple[str, str, str | None]:
        """Return record ``i``'s prompt text (image markers where its images stand), chosen and rejected answers."""
        text, _, chosen, rejected = render_record(self.records[i], self.prompts, end_of_chunk=self.end_of_chunk)
        return text, chosen, rejected

    def answers(self, i: int) -> tuple[str, str | None]:
        """Return (chosen, rejected) answers of record ``i`` as scored (with the end marker), without images."""
        return self.render(i)[1:]

    def scored_text(self, i: int) -> tuple[str, str]:
        """Return (the text after record ``i``'s last image, its chosen answer): what the answer is read after."""
        text, chosen, _ = self.render(i)
        return text.rsplit(self.prompts["vqa"].image_marker, 1)[-1], chosen

    def group(self, i: int) -> str:
        """Return the metrics group of record ``i``: its rejected type, or its kind for SFT records."""
        rec = self.records[i]
        return rec.rejected_type if isinstance(rec, PreferenceRecord) else rec.kind

    def split_off(self, fraction: float, seed: int) -> RecordDataset:
        """Return a held-out dataset of a seeded ``fraction`` of the records, removing them from this one."""
        n = max(1, round(fraction * len(self.records)))
        if n >= len(self.records):
            raise DataError(self.path, f"data.eval_fraction {fraction} leaves no record to train on")
        held = set(random.Random(seed).sample(range(len(self.records)), n))
        other = copy.copy(self)
        other.records = [r for i, r in enumerate(self.records) if i in held]
        self.records = [r for i, r in enumerate(self.records) if i not in held]
        return other

    def is_preference(self) -> bool:
        """Return True when the records are preference pairs (they have a rejected answer)."""
        return isinstance(self.records[0], PreferenceRecord)

    def data_files(self) -> list[Path]:
        """Return the files the examples are read from (what the reference log-probs' fingerprint hashes)."""
        return [self.path]


class ConversationDataset(RecordDataset):
    """Rendered rows of TRL-layout vision preference data (``data.conversations``), images embedded.

    A row's turns are written in the model's prompt format as a record's demonstrations and query are (one
    ``render_turns``), so the TRL export of some records trains exactly as the records do.
    """

    def __init__(self, path: str | Path, *, max_records: int | None = None, end_of_chunk: str = AGNOSTIC_END,
                 prompts: dict[str, PromptFormat] | None = None):
        self.path = conversations.export_root(Path(path))
        self.end_of_chunk, self.prompts = end_of_chunk, dict(prompts or OPENFLAMINGO)
        self.image_root = None  # the images are in the data
        ds, self.files = conversations.load(path)
        self.data = conversations.with_images(ds, Path(path))
        self.records = list(conversations.conversations(self.data, Path(path), marker=self.prompts["vqa"].image_marker,
                                                        max_rows=max_records))
        if not self.records:
            raise DataError(path, "no rows (data.path)")
        self._image = lru_cache(maxsize=512)(self._row_images)

    def _row_images(self, row: int) -> list:
        return [to_rgb(img) for img in self.data[row]["images"]]

    def __getitem__(self, i: int) -> Example:
        conv = self.records[i]
        text, chosen, rejected = self.render(i)
        return Example(conv.id, to_interleaved(text, self._image(conv.row), self.prompts["vqa"].image_marker), chosen,
                       rejected, conv.group)

    def render(self, i: int) -> tuple[str, str, str]:
        """Return row ``i``'s prompt text (image markers where its images stand), chosen and rejected answers."""
        conv = self.records[i]
        return (render_turns(self.prompts, conv.turns, end_of_chunk=self.end_of_chunk),
                *self.answers(i))

    def answers(self, i: int) -> tuple[str, str]:
        conv = self.records[i]
        return conv.chosen + self.end_of_chunk, conv.rejected + self.end_of_chunk

    def group(self, i: int) -> str | None:
        """Return the metrics group of row ``i``: the export's rejected type, None for other data."""
        return self.records[i].group

    def is_preference(self) -> bool:
        return True

    def data_files(self) -> list[Path]:
        return self.files


def open_dataset(path: str | Path, *, image_root: str | Path | None = None, max_records: int | None = None,
                 end_of_chunk: str = AGNOSTIC_END, prompts: dict[str, PromptFormat] | None = None) -> RecordDataset:
    """Return the training examples of ``path``: a record file, or TRL-layout data (a folder, a non-record parquet)."""
    path = Path(path)
    if path.is_dir() or (path.suffix.lower() == ".parquet" and path.is_file() and not is_record_parquet(path)):
        return ConversationDataset(path, max_records=max_records, end_of_chunk=end_of_chunk, prompts=prompts)
    return RecordDataset(path, image_root=image_root, max_records=max_records, end_of_chunk=end_of_chunk,
                         prompts=prompts)


def is_record_parquet(path: Path) -> bool:
    """Return True when a parquet file holds symdpo records (its columns include ``context`` and ``query``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError):  # not readable as parquet: the record reader names the problem
        return True
    return {"context", "query"} <= names


def steps_per_epoch(n: int, global_batch: int) -> int:
    """Return the optimiser steps of one epoch; the last incomplete global batch is dropped (reshuffled next epoch)."""
    steps = n // global_batch
    if steps == 0:
        raise ValueError(f"{n} records cannot fill one global batch of {global_batch}: lower "
                         "data.global_batch_size or use more records")
    return steps


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> list[int]:
    """Return the record order of an epoch (a seeded permutation, independent of the process count)."""
    order = list(range(n))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def step_indices(n: int, step: int, *, global_batch: int, seed: int, shuffle: bool) -> list[int]:
    """Return the record indices of optimiser step ``step`` (0-based, counted over all epochs)."""
    spe = steps_per_epoch(n, global_batch)
    epoch, within = divmod(step, spe)
    return epoch_order(n, epoch, seed, shuffle)[within * global_batch:(within + 1) * global_batch]


def micro_batches(indices: list[int], *, rank: int, world: int, micro_batch: int) -> list[list[int]]:
    """Return this process's micro-batches of one global batch: a contiguous share, split in order."""
    share = len(indices) // world
    mine = indices[rank * share:(rank + 1) * share]
    return [mine[i:i + micro_batch] for i in range(0, len(mine), micro_batch)]
