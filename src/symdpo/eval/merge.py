"""The merge step: all processes' prediction files -> one predictions.jsonl, scores, and the report files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from symdpo.atomic import write_text
from symdpo.eval.config import EvalConfig
from symdpo.eval.errors import EvalError
from symdpo.eval.metrics.vqa_accuracy import percent_of
from symdpo.eval.plan import conditions
from symdpo.eval.predictions import read_all, row_key
from symdpo.eval.report import write_reports
from symdpo.eval.report.provenance import provenance
from symdpo.eval.report.stats import drops
from symdpo.eval.runner import CONFIG_FILE, MODEL_FILE, PREDICTIONS_DIR, eval_records, task_or_error


def load_config(run_dir: str | Path) -> EvalConfig:
    """Return the config saved in a run directory."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise EvalError(f"{run_dir} is not an evaluation run directory (no {CONFIG_FILE})")
    return EvalConfig.model_validate_json(path.read_text())


TYPE_ORDER = ("yes/no", "number", "other", "shape", "color")  # the order papers report VQAv2's types in


def by_answer_type(per_item: list[float] | None, records: list[Any]) -> dict[str, Any]:
    """Return {"by_type": {type: {"score": percent, "n": items}}}, or {} without answer types or per-item scores."""
    # the records' answer_type: VQAv2's yes/no, number, other; easy-VQA's yes/no, shape, color (TextVQA: none);
    # a record without one counts as "unknown" when others have one
    types = [getattr(r, "answer_type", None) for r in records]
    if per_item is None or not any(types):
        return {}
    groups: dict[str, list[float]] = {}
    for t, score in zip(types, per_item, strict=True):
        groups.setdefault(t or "unknown", []).append(score)
    order = sorted(groups, key=lambda t: (TYPE_ORDER.index(t) if t in TYPE_ORDER else len(TYPE_ORDER), t))
    return {"by_type": {t: {"score": percent_of(groups[t]), "n": len(groups[t])} for t in order}}


def merge_run(run_dir: str | Path) -> dict[str, Any]:
    """Score a finished run: write predictions.jsonl, results.json, results.md and plots; return the results."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    rows = read_all(run_dir / PREDICTIONS_DIR)
    cells: dict[tuple, dict[str, Any]] = {}
    ordered: list[dict[str, Any]] = []
    tokenizers = set()
    for name in config.tasks:
        task = task_or_error(name)
        records = eval_records(config, task).records
        for cond in conditions(config, name):
            keys = [(*row_key({**cond.row(), "id": r.id}),) for r in records]
            missing = [k for k in keys if k not in rows]
            if missing:
                raise EvalError(f"{len(missing)} of {len(keys)} predictions missing for {cond.row()}; rerun "
                                f"`symdpo eval run` with --out {run_dir} to finish (every process of a sharded run)")
            found = [rows[k] for k in keys]
            ordered.extend(found)
            options = {k: getattr(config, k) for k in task.metric_options}  # e.g. VL-ICL's scoring fixes
            scored = task.metric({r["id"]: r["prediction"] for r in found}, records, **options)
            tokenizers.add(scored.get("tokenizer"))
            cell = cells.setdefault((name, cond.shots, cond.demo_images, cond.query_image, cond.demo_labels), {
                "task": name, "shots": cond.shots, "demo_images": cond.demo_images, "query_image": cond.query_image,
                "demo_labels": cond.demo_labels, "metric": scored["metric"], "n": len(records), "trials": []})
            cell["trials"].append({"seed": cond.seed, "score": scored["score"],
                                   **by_answer_type(scored.get("per_item"), records)})
    for cell in cells.values():
        scores = [t["score"] for t in cell["trials"]]
        # population std (ddof 0), as OpenFlamingo's np.nanstd over trials
        cell["mean"], cell["std"] = float(np.mean(scores)), float(np.std(scores))
        if all("by_type" in t for t in cell["trials"]):  # the same statistics per answer type (same items)
            cell["by_type"] = {}
            for kind, first in cell["trials"][0]["by_type"].items():
                per_trial = [t["by_type"][kind]["score"] for t in cell["trials"]]
                cell["by_type"][kind] = {"mean": float(np.mean(per_trial)), "std": float(np.std(per_trial)),
                                         "n": first["n"]}
    tokenizers.discard(None)
    model = json.loads((run_dir / MODEL_FILE).read_text()) if (run_dir / MODEL_FILE).exists() else {}
    results = {
        "config": config.model_dump(mode="json"),
        "model": model,
        **provenance(),
        "cider_tokenizer": ",".join(sorted(tokenizers)) if tokenizers else None,
        "results": list(cells.values()),
        "drops": drops(list(cells.values())),
    }
    write_text(run_dir / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered))
    write_reports(run_dir, results)
    if Path(config.model).is_dir():  # a saved fine-tune: its model card gets this run's table
        from symdpo.models.card import add_evaluation

        add_evaluation(config.model, run_dir)
    return results
