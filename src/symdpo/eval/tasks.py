"""The registered tasks and their lookup: a task is data + prompt + post-processing + metric + decoding parameters.

Adding a benchmark is one decorated factory (``eval/registry.py``); OpenFlamingo's are here, VL-ICL's in
``eval/vlicl_tasks.py``, and `get_task` sees them all. The protocol values follow OpenFlamingo's evaluation (docs/openflamingo.md, "Few-shot
evaluation protocol"): demonstrations show the *first* caption / the *first* annotator answer, beam search with
3 beams and length_penalty 0.0, max new tokens 20 (captions), 5 (VQA), 10 (TextVQA).

Data comes from the readers in ``symdpo.data.sources`` through ``eval.datasets.read_split`` (imported inside
the loaders, so the registry can be listed without reading anything). A loader returns a ``Split``: the
``VQAExample`` / ``CaptionExample`` records and the folder their image paths are relative to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from symdpo.eval import vlicl_tasks  # noqa: F401  (registers the VL-ICL tasks)
from symdpo.eval.datasets import Split, split_loader
from symdpo.eval.metrics.cider import compute_cider
from symdpo.eval.metrics.vqa_accuracy import normalize_answer, percent_of, vqa_accuracies
from symdpo.eval.postprocess import postprocess_caption, postprocess_okvqa, postprocess_vqa
from symdpo.eval.prompts import CAPTION_TEMPLATE, VQA_TEMPLATE
from symdpo.eval.registry import DECODING, TASKS, GenerationParams, Record, Task, register_task


def get_task(name: str) -> Task:
    """Return the task registered as ``name``; an unknown name raises KeyError listing the known ones."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()


def list_tasks() -> list[str]:
    """Return the registered task names, sorted."""
    return sorted(TASKS)


# --- data loaders -------------------------------------------------------------------------------------------


def symbol_probe_loader(paths: Mapping[str, Any], split: str) -> Split:
    """Raise an EvalError: symbol-ICL probes run through `symdpo eval symbols`, not this generation runner."""
    from symdpo.eval.errors import EvalError

    # Symbol probes are scored (the model ranks the context's symbols), not generated, so they run through
    # `symdpo eval symbols` (eval/symbol_icl.py) rather than this generation runner.
    raise EvalError("symbol_icl probes are scored, not generated: build them from a held-out split with "
                    "`symdpo data build --icl-fraction 0 ...` (easy-VQA: --split test; VQAv2/OK-VQA: the val "
                    "files) and run `symdpo eval symbols --probes FILE`")


# --- metrics ------------------------------------------------------------------------------------------------


def _predictions_for(predictions: Mapping[str, str], records: Sequence[Record]) -> list[str]:
    """Return the prediction of each record in order; records without one raise KeyError naming a few."""
    missing = [r.id for r in records if r.id not in predictions]
    if missing:
        raise KeyError(f"{len(missing)} records have no prediction, e.g. {missing[:3]}")
    return [predictions[r.id] for r in records]


def vqa_metric(predictions: Mapping[str, str], records: Sequence[Record]) -> dict[str, Any]:
    """Return {"score": VQA accuracy in percent, "per_item": each record's accuracy in [0, 1], in order}."""
    empty = [r.id for r in records if not r.answers]
    if empty:
        raise ValueError(f"{len(empty)} annotations have no answers, e.g. {empty[:3]}")
    preds = _predictions_for(predictions, records)
    items = vqa_accuracies(preds, [r.answers for r in records])
    return {"score": percent_of(items), "metric": "vqa_accuracy", "per_item": items}


def single_answer_metric(predictions: Mapping[str, str], records: Sequence[Record]) -> dict[str, Any]:
    """Return vqa_metric's score and per-item accuracies with each record's one answer given by ten annotators."""
    preds = _predictions_for(predictions, records)
    items = vqa_accuracies(preds, [[r.answer] * 10 for r in records])
    return {"score": percent_of(items), "metric": "vqa_accuracy", "per_item": items}


def cider_metric(predictions: Mapping[str, str], records: Sequence[Record]) -> dict[str, Any]:
    """Return {"score": CIDEr-D x 100, "tokenizer": "ptb" | "python"} against all reference captions."""
    preds = _predictions_for(predictions, records)
    result = compute_cider(dict(zip([r.id for r in records], preds, strict=True)), {r.id: r.captions for r in records})
    return {"score": result.percent, "metric": "cider", "tokenizer": result.tokenizer}


def symbol_accuracy_metric(predictions: Mapping[str, str], records: Sequence[Record]) -> dict[str, Any]:
    """Return {"score": percent of items whose normalised prediction is the correct symbol}."""
    preds = _predictions_for(predictions, records)
    hits = sum(normalize_answer(p) == normalize_answer(r.answer) for p, r in zip(preds, records, strict=True))
    return {"score": 100.0 * hits / len(records), "metric": "symbol_accuracy"}


# --- the tasks ----------------------------------------------------------------------------------------------


def _caption_task(name: str) -> Task:
    """Return a Karpathy-test captioning task scored with CIDEr."""
    return Task(name, "caption", split_loader(name), CAPTION_TEMPLATE, postprocess_caption, cider_metric,
                DECODING["caption"], eval_split="test")  # fmt: skip


def _vqa_task(name: str, *, generation: GenerationParams = DECODING["vqa"], postprocess=postprocess_vqa,
              metric=vqa_metric, eval_split: str = "val") -> Task:  # fmt: skip
    """Return a VQA task (validation split, VQA accuracy unless told otherwise)."""
    return Task(name, "vqa", split_loader(name), VQA_TEMPLATE, postprocess, metric, generation,
                eval_split=eval_split)  # fmt: skip


@register_task("coco")
def coco() -> Task:
    """Return COCO captioning (Karpathy test, CIDEr)."""
    return _caption_task("coco")


@register_task("flickr30k")
def flickr30k() -> Task:
    """Return Flickr30K captioning (Karpathy test, CIDEr)."""
    return _caption_task("flickr30k")


@register_task("vqav2")
def vqav2() -> Task:
    """Return VQAv2 (val, VQA accuracy)."""
    return _vqa_task("vqav2")


@register_task("okvqa")
def okvqa() -> Task:
    """Return OK-VQA (val, VQA accuracy on stemmed predictions)."""
    return _vqa_task("okvqa", postprocess=postprocess_okvqa)


@register_task("textvqa")
def textvqa() -> Task:
    """Return TextVQA (val, VQA accuracy, up to 10 new tokens)."""
    return _vqa_task("textvqa", generation=GenerationParams(max_new_tokens=10))


@register_task("easyvqa")
def easyvqa() -> Task:
    """Return easy-VQA (test, VQA accuracy with the single answer repeated ten times)."""
    return _vqa_task("easyvqa", metric=single_answer_metric, eval_split="test")


@register_task("easyvqa-open")
def easyvqa_open() -> Task:
    """Return easy-VQA's open questions only ("what color / shape ..."), whose answer only the image gives."""
    load = split_loader("easyvqa")

    def load_open(paths: Mapping[str, Any], split: str) -> Split:
        whole = load(paths, split)
        return Split([r for r in whole.records if r.question.lower().startswith("what")], whole.image_root)

    return Task("easyvqa-open", "vqa", load_open, VQA_TEMPLATE, postprocess_vqa, single_answer_metric,
                DECODING["vqa"], eval_split="test")  # fmt: skip


@register_task("symbol_icl")
def symbol_icl() -> Task:
    """Return the symbol-ICL probe: pick the symbol of the query's answer from demonstrations built on VQA val."""
    return Task("symbol_icl", "symbol_icl", symbol_probe_loader, VQA_TEMPLATE, postprocess_vqa,
                symbol_accuracy_metric, DECODING["vqa"], eval_split="val",
                demos_in_record=True)  # fmt: skip
