"""What a run evaluates: per task the eval subset and, per trial, the query set and the demonstrations.

Everything here is a pure function of the config and the data, never of the process or the batch: item i's
demonstrations come from an RNG seeded by (trial seed, item id), so any process, in any order, builds the
same context for it. That is what lets sharded and resumed runs reproduce a single uninterrupted run.

Deviation from OpenFlamingo, on purpose: its eval subset is redrawn with each trial seed; ours is drawn once
(``seed``) so trials, shots and image conditions are scored on the same items and their differences are
paired. Its demos are drawn per batch from one RNG; ours per item (same distribution).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symdpo.data.demos import Rices, random_demos
from symdpo.eval.config import EvalConfig
from symdpo.eval.datasets import Split
from symdpo.eval.errors import EvalError
from symdpo.eval.images import BLANK, ImageRef
from symdpo.eval.labels import relabel
from symdpo.eval.prompts import PromptItem, effective_num_shots, render_context
from symdpo.eval.registry import Task
from symdpo.models.prompts import to_interleaved


@dataclass(frozen=True)
class Condition:
    """One cell of the run: task x shots x trial x image conditions."""

    task: str
    shots: int
    trial: int
    seed: int
    demo_images: str
    query_image: str
    demo_labels: str = "real"

    def row(self) -> dict[str, Any]:
        """Return the condition's fields as written in each prediction row."""
        return {"task": self.task, "shots": self.shots, "trial": self.trial, "seed": self.seed,
                "demo_images": self.demo_images, "query_image": self.query_image, "demo_labels": self.demo_labels}


@dataclass
class Trial:
    """The demonstration pool of one trial: query-set indices into the train split, and RICES over it."""

    seed: int
    query_set: list[int]
    pool: list[Any] = field(default_factory=list)  # the query set's train records
    pool_refs: list[ImageRef] = field(default_factory=list)
    rices: Rices | None = None


@dataclass
class TaskPlan:
    """One task's data: the evaluated records, the train split and the trials' query sets."""

    task: Task
    eval: Split
    train: Split
    trials: list[Trial]
    eval_features: np.ndarray | None = None  # RICES: one retrieval-encoder image embedding per evaluated record
    feature_row: dict[str, int] = field(default_factory=dict)
    eval_text_features: np.ndarray | None = None  # rices-text: the query-side text embedding (same rows)
    template: Any = None  # the evaluated model's prompt format for the task (default: the task's own)
    ood_refs: list[ImageRef] = field(default_factory=list)  # demo_images "ood": the other source's images

    @property
    def prompt(self) -> Any:
        """Return the prompt format contexts are written in: the model's, else the task's."""
        return self.template or self.task.template

    def demos(self, trial: Trial, record: Any, shots: int) -> list[Any]:
        """Return the train records shown before ``record`` (most similar last under RICES)."""
        if self.task.select_demos is not None:  # the benchmark's own choice (VL-ICL), same seeding
            return self.task.select_demos(random.Random(f"{trial.seed}/{record.id}"), trial.pool, record, shots)
        k = effective_num_shots(shots)
        pool = trial.pool
        if trial.rices is not None:
            i = self.feature_row[record.id]
            text = {} if self.eval_text_features is None else {"query_texts": self.eval_text_features[i][None]}
            picked = trial.rices.select(self.eval_features[i][None], [self._eval_key(record)], k, **text)[0]
        else:
            rng = random.Random(f"{trial.seed}/{record.id}")
            picked = random_demos(rng, trial.pool_refs, self._eval_key(record), k)
        if len(picked) < k:
            raise EvalError(f"{self.task.name}: only {len(picked)} demonstrations with distinct images for "
                            f"{k} shots (query set of {len(pool)} items); lower the shots")
        return [pool[i] for i in picked]

    def _train_key(self, record: Any) -> ImageRef | tuple[ImageRef, ...]:
        return image_ref(self.train.image_root, record.image)

    def _eval_key(self, record: Any) -> ImageRef | tuple[ImageRef, ...]:
        return image_ref(self.eval.image_root, record.image)

    def context(self, cond: Condition, record: Any) -> tuple[list[Any], list[str]]:
        """Return the interleaved context (text and ImageRefs) for ``record`` under ``cond``, and the demo ids."""
        task = self.task
        trial = self.trials[cond.trial]
        demos = self.demos(trial, record, cond.shots)
        refs = self._demo_images(cond, trial, record, [self._train_key(d) for d in demos])
        fields = self._demo_fields(cond, trial, record, [dict(task.prompt_item(d, demo=True).fields) for d in demos])
        query_ref = _blank_like(self._eval_key(record)) if cond.query_image == "blank" else self._eval_key(record)
        items = [PromptItem(ref, f) for ref, f in zip(refs, fields, strict=True)]
        query = PromptItem(query_ref, task.prompt_item(record, demo=False).fields)
        text, images = render_context(self.prompt, items, query, text_only_demos=cond.shots == 0 or cond.demo_images == "none",
                                      query_has_image=cond.query_image != "none")
        return to_interleaved(text, images, self.prompt.image_marker), [d.id for d in demos]

    def _demo_images(self, cond: Condition, trial: Trial, record: Any, refs: list[ImageRef]) -> list[ImageRef]:
        """Return the demonstrations' images under the condition (real, blank, shuffled, ood; none: unused)."""
        if cond.demo_images == "blank":
            return [_blank_like(r) for r in refs]
        if cond.demo_images == "shuffled":  # a multi-image demonstration's images move together
            return derangement(refs, random.Random(f"{trial.seed}/{record.id}/shuffle"))
        if cond.demo_images == "ood":
            flat = [r for ref in refs for r in (ref if isinstance(ref, tuple) else (ref,))]
            if len(flat) > len(self.ood_refs):  # multi-image demonstrations need more than one per shot
                raise EvalError(f"--ood-images: {len(self.ood_refs)} images, but {self.task.name} at {cond.shots} shots "
                                f"shows {len(flat)} demonstration images; add images or lower the shots")
            drawn = iter(random.Random(f"{trial.seed}/{record.id}/ood").sample(self.ood_refs, len(flat)))
            return [tuple(next(drawn) for _ in ref) if isinstance(ref, tuple) else next(drawn) for ref in refs]
        return refs

    def _demo_fields(self, cond: Condition, trial: Trial, record: Any, fields: list[dict[str, str]]) -> list[dict[str, str]]:
        """Return the demonstrations' prompt fields with their labels (answer / caption) under the condition."""
        if cond.demo_labels == "real" or not fields:
            return fields
        name = "caption" if self.task.kind == "caption" else "answer"
        questions = [f["question"] for f in fields if "question" in f] + [getattr(record, "question", None) or ""]
        labels = relabel(cond.demo_labels, [f[name] for f in fields], random.Random(f"{trial.seed}/{record.id}/labels"),
                         context_texts=questions)
        return [{**f, name: label} for f, label in zip(fields, labels, strict=True)]


def image_ref(root: Any, image: str | tuple[str, ...]) -> ImageRef | tuple[ImageRef, ...]:
    """Return the ref of a record's image, or a tuple of refs for a multi-image record (VL-ICL's image lists)."""
    if isinstance(image, tuple):
        return tuple(ImageRef(str(root), rel) for rel in image)
    return ImageRef(str(root), image)


def _blank_like(ref: ImageRef | tuple[ImageRef, ...]) -> ImageRef | tuple[ImageRef, ...]:
    """Return the blank image in place of ``ref`` (one blank per image of a multi-image record)."""
    return tuple(BLANK for _ in ref) if isinstance(ref, tuple) else BLANK


def derangement(items: list[Any], rng: random.Random) -> list[Any]:
    """Return ``items`` permuted so that no position keeps its own item (as far as distinct items allow)."""
    if len(items) < 2:
        return list(items)
    order = list(range(len(items)))
    for _ in range(100):
        rng.shuffle(order)
        if all(i != j for i, j in enumerate(order)):
            return [items[j] for j in order]
    return items[1:] + items[:1]  # a rotation is always a derangement


def eval_subset(records: Sequence[Any], num_samples: int | None, seed: int) -> list[Any]:
    """Return a seeded random subset of ``num_samples`` records, in their file order (all when None)."""
    if num_samples is None or num_samples >= len(records):
        return list(records)
    keep = sorted(random.Random(seed).sample(range(len(records)), num_samples))
    return [records[i] for i in keep]


def make_trial(train: Split, size: int, seed: int) -> Trial:
    """Return a trial's seeded query set (OpenFlamingo draws 2048 train items per trial seed)."""
    idx = random.Random(seed).sample(range(len(train.records)), min(size, len(train.records)))
    pool = [train.records[i] for i in idx]
    return Trial(seed, idx, pool, [ImageRef(str(train.image_root), r.image) for r in pool])


def condition_values(config: EvalConfig) -> list[tuple[str, str, str]]:
    """Return the (demo_images, query_image, demo_labels) combinations the config asks for, in run order."""
    if config.vary == "product":
        return [(d, q, lab) for q in config.query_image for d in config.demo_images for lab in config.demo_labels]
    out = [("real", "real", "real")]  # each: the all-real condition, then every altered value alone
    out += [(d, "real", "real") for d in config.demo_images if d != "real"]
    out += [("real", q, "real") for q in config.query_image if q != "real"]
    out += [("real", "real", lab) for lab in config.demo_labels if lab != "real"]
    return out


def conditions(config: EvalConfig, task: str) -> list[Condition]:
    """Return the task's conditions in run order; 0-shot demos are text-only, so no demo-image condition there."""
    out = []
    for demo_images, query_image, demo_labels in condition_values(config):
        for shots in config.shots:
            if shots == 0 and demo_images != "real":
                continue
            for t, seed in enumerate(config.trial_seeds()):
                out.append(Condition(task, shots, t, seed, demo_images, query_image, demo_labels))
    return out


def check_shots(config: EvalConfig, name: str, trials: list[Trial], ood: Sequence[ImageRef] = ()) -> None:
    """Raise an EvalError when a shot count exceeds the query set (or the out-of-distribution images)."""
    need = max(effective_num_shots(s) for s in config.shots)
    have = min(len(t.query_set) for t in trials)
    if need > have:
        raise EvalError(f"{name}: {need} shots need at least {need} demonstrations but the query set has {have} "
                        f"items (--query-set-size {config.query_set_size}, train split size)")
    need_ood = max(config.shots)  # 0 shots: no demonstration images to replace
    if "ood" in config.demo_images and need_ood > len(ood):
        raise EvalError(f"--ood-images {config.ood_images}: {len(ood)} images, but {need_ood} shots need at least "
                        f"{need_ood}; add images or lower the shots")
