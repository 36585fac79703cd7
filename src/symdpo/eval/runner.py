"""Run an evaluation: tasks x image conditions x shots x trials, batched, sharded, resumable.

Work is cut into batches in one canonical order and batch b belongs to process b % world. A batch is always
generated whole, even when a kill left part of it done, so every item is decoded in the same company (same
padding) as in an uninterrupted single-process run and gets bit-identical output. Rows already in the
run's predictions files are never written again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symdpo.atomic import write_text
from symdpo.data.errors import BadImageError
from symdpo.data.images import check_image
from symdpo.eval.config import EvalConfig
from symdpo.eval.errors import EvalError
from symdpo.eval.images import ImageProvider, ImageRef, folder_images
from symdpo.eval.plan import Condition, TaskPlan, check_shots, conditions, eval_subset, make_trial
from symdpo.eval.predictions import PredictionWriter, part_path, read_all, row_key
from symdpo.eval.registry import Task
from symdpo.eval.tasks import get_task

CONFIG_FILE = "config.json"
MODEL_FILE = "model.json"
PREDICTIONS_DIR = "predictions"


@dataclass(frozen=True)
class Batch:
    """Records of one condition generated together."""

    plan: TaskPlan
    cond: Condition
    records: list[Any]


@dataclass
class RunStats:
    """What one process did."""

    written: int = 0
    skipped: int = 0  # items found finished in the predictions files
    batches: int = 0
    seconds: float = 0.0
    images_encoded: int = 0
    feature_hits: int = 0
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def task_or_error(name: str) -> Task:
    """Return the registered task ``name``; an unknown name is an EvalError listing the known ones."""
    try:
        return get_task(name)
    except KeyError as e:
        raise EvalError(e.args[0]) from None


def eval_records(config: EvalConfig, task: Task) -> Any:
    """Return the task's evaluated split with its seeded subset of ``num_samples`` records."""
    split = task.load(config.paths, task.eval_split)
    if not split.records:
        raise EvalError(f"{task.name}: the {task.eval_split} split has no records")
    return type(split)(eval_subset(split.records, config.num_samples, config.seed), split.image_root)


def check_images(name: str, refs: list[ImageRef]) -> None:
    """Raise an EvalError naming the first missing or unreadable image (header check, no decoding)."""
    for ref in sorted(set(refs)):
        try:
            check_image(ref.root, ref.rel)
        except BadImageError as e:
            raise EvalError(f"{name}: bad image {ref.path()}: {e}") from None


def prepare(config: EvalConfig, model: Any | None = None) -> list[TaskPlan]:
    """Return one plan per task: eval subset, query sets and (RICES) features, with every image checked."""
    plans, encoder = [], None
    ood = folder_images(config.ood_images) if "ood" in config.demo_images else []  # one folder for every task
    if ood:
        check_images("--ood-images", ood)
    for name in config.tasks:
        task = task_or_error(name)
        ev = eval_records(config, task)
        train = task.load(config.paths, task.demo_split)
        trials = [make_trial(train, config.query_set_size, s) for s in config.trial_seeds()]
        if task.check_demos is not None:
            for shots in config.shots:
                for t in trials:
                    task.check_demos(shots, t.pool, ev.records)
        else:
            check_shots(config, name, trials, ood)
        used = {i for t in trials for i in t.query_set}
        check_images(name, record_refs(ev, ev.records) + record_refs(train, [train.records[i] for i in used]))
        plan = TaskPlan(task, ev, train, trials, template=task_template(task, model, config), ood_refs=ood)
        if config.demo_selection != "random":
            if task.select_demos is not None:
                raise EvalError(f"--demos {config.demo_selection}: {name} chooses its demonstrations as its "
                                "benchmark does; evaluate it with --demos random")
            if encoder is None:  # one encoder for every task; dropped (its memory freed) once the plans are made
                from symdpo.data.retrieval import load_retrieval_encoder

                encoder = load_retrieval_encoder(config.retrieval_encoder, device=_device_of(model))
            add_rices(plan, encoder, config)
        plans.append(plan)
    return plans


def record_refs(split: Any, records: list[Any]) -> list[ImageRef]:
    """Return refs to every image the records use (several per VL-ICL record: ``all_images``)."""
    root = str(split.image_root)
    return [ImageRef(root, rel) for r in records
            for rel in (r.all_images() if hasattr(r, "all_images") else (r.image,))]


def task_template(task: Task, model: Any | None, config: EvalConfig) -> Any:
    """Return the prompt format a task is written in for ``model`` (None: the task's own template)."""
    if task.prompt_for is not None:
        return task.prompt_for(model, config)
    if model is not None and task.kind in ("vqa", "caption"):
        return model.prompt_format(task.kind, config.prompt_style)
    return None


def add_rices(plan: TaskPlan, encoder: Any, config: EvalConfig) -> None:
    """Give ``plan`` RICES (or MMICES, ``rices-text``) over each trial's query set, on the retrieval encoder's embeddings.

    ``encoder`` is a ``symdpo.data.retrieval.RetrievalEncoder``, independent of the evaluated model (as
    OpenFlamingo's CLIP ViT-L/14). Caption queries have no text: their image embedding is compared with the
    demonstrations' captions (CLIP's image-text similarity).
    """
    from symdpo.data.demos import Rices, RicesText
    from symdpo.data.retrieval import embed_images, embed_texts, record_text

    ev, train, cache = plan.eval, plan.train, config.feature_cache
    plan.eval_features = embed_images(encoder, ev.image_root, [r.image for r in ev.records], cache_dir=cache)
    plan.feature_row = {r.id: i for i, r in enumerate(ev.records)}
    train_rows = sorted({i for t in plan.trials for i in t.query_set})
    feats = embed_images(encoder, train.image_root, [train.records[i].image for i in train_rows], cache_dir=cache)
    row_of = {i: j for j, i in enumerate(train_rows)}
    texts = None
    if config.demo_selection == "rices-text":
        texts = embed_texts(encoder, [record_text(train.records[i]) for i in train_rows], cache_dir=cache)
        questions = [getattr(r, "question", None) for r in ev.records]
        with_text = [i for i, q in enumerate(questions) if q]
        plan.eval_text_features = plan.eval_features.copy()
        if with_text:
            plan.eval_text_features[with_text] = embed_texts(encoder, [questions[i] for i in with_text], cache_dir=cache)
    for t in plan.trials:
        rows = [row_of[i] for i in t.query_set]
        t.rices = (Rices(feats[rows], t.pool_refs) if texts is None
                   else RicesText(feats[rows], t.pool_refs, texts[rows], prefilter=config.mmices_k))


def _device_of(model: Any) -> Any:
    """Return the device of the model's parameters (cpu without a model): where the retrieval encoder runs."""
    import torch

    try:
        return next(model.module.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def batches(config: EvalConfig, plans: list[TaskPlan]) -> Iterator[Batch]:
    """Yield every batch of the run in the canonical order (the same in every process)."""
    for plan in plans:
        records = list(plan.eval.records)
        for cond in conditions(config, plan.task.name):
            for start in range(0, len(records), config.batch_size):
                yield Batch(plan, cond, records[start:start + config.batch_size])


_TRAINING_MARKERS = ("run.json", "metrics.jsonl", "checkpoints", "final")  # what a training output_dir holds


def check_run_dir(out: Path) -> None:
    """Raise EvalError unless ``out`` is absent, empty, or an earlier evaluation run (checked before any work)."""
    if out.exists() and not out.is_dir():
        raise EvalError(f"--out {out}: is a file; give a folder for the run")
    if not out.is_dir():
        return
    found = [m for m in _TRAINING_MARKERS if (out / m).exists()]
    if found:
        raise EvalError(f"--out {out}: holds a training run ({', '.join(found)}); give the evaluation its own "
                        f"folder, e.g. --out {out / 'eval'}")
    path = out / CONFIG_FILE
    if path.exists():
        try:
            EvalConfig.model_validate_json(path.read_text())
        except ValueError:
            raise EvalError(f"--out {out}: its {CONFIG_FILE} is not an evaluation run's (a saved model?); "
                            "give the evaluation its own folder") from None


def write_run_files(out: Path, config: EvalConfig, model_info: dict[str, Any]) -> None:
    """Write config.json and model.json, or check that an earlier run in ``out`` predicted the same things."""
    check_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CONFIG_FILE
    if path.exists():
        old = EvalConfig.model_validate_json(path.read_text())
        if old.prediction_fingerprint() != config.prediction_fingerprint():
            diff = [k for k, v in config.prediction_fingerprint().items() if old.prediction_fingerprint()[k] != v]
            raise EvalError(f"{out} holds a run with different {', '.join(diff)}; use another --out")
    for name, data in ((CONFIG_FILE, config.model_dump(mode="json")), (MODEL_FILE, model_info)):
        write_text(out / name, json.dumps(data, indent=2) + "\n")  # every process may write: same content


def run_eval(config: EvalConfig, model: Any, out: str | Path, *, model_info: dict[str, Any] | None = None,
             rank: int = 0, world: int = 1, stop_after: int | None = None, progress: bool = False,
             plans: list[TaskPlan] | None = None) -> RunStats:
    """Generate this process's share of the predictions into ``out`` and return what it did.

    ``stop_after`` stops after writing that many rows (tests use it to simulate a kill); ``plans`` reuses
    the output of ``prepare(config, model)``.
    """
    if not 0 <= rank < world:
        raise EvalError(f"rank {rank} is not in a world of {world} processes")
    out = Path(out)
    write_run_files(out, config, model_info or {"name": config.model})
    plans = plans if plans is not None else prepare(config, model)
    pred_dir = out / PREDICTIONS_DIR
    finished = set(read_all(pred_dir)) if pred_dir.exists() else set()
    provider = ImageProvider(model, disk=_disk_cache(config, model_info))
    stats, start = RunStats(), time.perf_counter()
    todo_batches = [b for i, b in enumerate(batches(config, plans)) if i % world == rank]
    bar = _progress(len(todo_batches), progress, rank)
    # the model's own per-image cache (HF families) lasts the run; Flamingo is fed cached features instead
    with PredictionWriter(part_path(pred_dir, rank)) as writer, model.image_cache() as cache:
        for batch in todo_batches:
            rows = [{**batch.cond.row(), "id": r.id} for r in batch.records]
            todo = [row_key(r) not in finished for r in rows]
            stats.skipped += todo.count(False)
            if any(todo):
                for row, text, demo_ids in zip(rows, *generate(batch, model, provider), strict=True):
                    row.update(prediction=batch.plan.task.postprocess(text), raw=text, demo_ids=demo_ids)
                stats.batches += 1
                for row, new in zip(rows, todo, strict=True):
                    if new:
                        writer.write(row)
                        stats.written += 1
                        if stop_after is not None and stats.written >= stop_after:
                            stats.interrupted = True
                            break
            bar.update(1)
            if stats.interrupted:
                break
    bar.close()
    stats.seconds = time.perf_counter() - start
    stats.images_encoded = provider.encoded + (cache.encoded if cache is not None else 0)
    stats.feature_hits = provider.hits + (cache.hits if cache is not None else 0)
    return stats


def generate(batch: Batch, model: Any, provider: ImageProvider) -> tuple[list[str], list[list[str]]]:
    """Return the raw generations of a batch and each item's demonstration ids."""
    built = [batch.plan.context(batch.cond, r) for r in batch.records]
    contexts = [c for c, _ in built]
    items = provider.resolve(x for c in contexts for x in c if isinstance(x, ImageRef))
    contexts = [[items[x] if isinstance(x, ImageRef) else x for x in c] for c in contexts]
    gen = batch.plan.task.generation
    texts = model.generate(contexts, max_new_tokens=gen.max_new_tokens, num_beams=gen.num_beams,
                           length_penalty=gen.length_penalty)
    return texts, [ids for _, ids in built]


def _disk_cache(config: EvalConfig, model_info: dict[str, Any] | None) -> Any:
    """Return the on-disk feature cache of the model's vision encoder, when the config names a folder."""
    if not config.feature_cache:
        return None
    from symdpo.data.features import FeatureCache

    encoder = (model_info or {}).get("vision_id") or config.model
    return FeatureCache(config.feature_cache, f"eval:{encoder}")


def _progress(total: int, enabled: bool, rank: int) -> Any:
    """Return a tqdm bar over batches (a no-op object when disabled); in a log file, a line every 30 s at most."""
    import sys

    from tqdm import tqdm

    log = not sys.stderr.isatty()  # SLURM logs, pipes: no live bar redrawn ten times a second
    return tqdm(total=total, disable=not enabled, desc=f"eval[rank {rank}]", unit="batch",
                mininterval=30.0 if log else 0.1, ascii=log)
