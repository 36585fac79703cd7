"""Model cards: the README.md every saved fine-tune carries, and its evaluation section.

The card is written at the end of training (base model, the data manifest's summary, the resolved training
config) and its evaluation section is filled in by ``symdpo eval run`` whenever a run evaluates the folder.
It follows the Hugging Face model-card layout: YAML metadata first (``base_model``, ``library_name``, tags),
so ``symdpo model push`` uploads a folder the hub renders as is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from symdpo.atomic import write_text

CARD = "README.md"
EVAL_START, EVAL_END = "<!-- symdpo:evaluation -->", "<!-- /symdpo:evaluation -->"
NOT_EVALUATED = ("Not evaluated yet. `symdpo eval run --model THIS_FOLDER ...` writes its results here.")


def data_summary(manifest: dict[str, Any] | None) -> str:
    """Return the Markdown lines summarising a data manifest (source, record counts, symbols)."""
    if not manifest:
        return "No data manifest was found beside the training data."
    source, counts = manifest.get("source", {}), manifest.get("counts", {})
    lines = [f"- source: `{source.get('name')}` ({source.get('split')} split), {counts.get('records', '?')} "
             f"{manifest.get('record_type', '')} records, seed {manifest.get('seed')}"]
    for key, label in (("by_kind", "contexts"), ("by_rejected_type", "rejected answers")):
        if counts.get(key):
            lines.append(f"- {label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts[key].items())))
    vocab = manifest.get("vocabulary")
    if vocab:
        lines.append(f"- symbol vocabulary: {vocab.get('size')} symbols (sha256 `{str(vocab.get('sha256'))[:12]}`)")
    return "\n".join(lines)


def render(*, name: str, base: str | None, family: str, train_config: dict[str, Any],
           manifest: dict[str, Any] | None, evaluation: str = NOT_EVALUATED) -> str:
    """Return the card's Markdown text."""
    meta = {"library_name": "symdpo", "tags": ["symdpo", "multimodal", "in-context-learning", "dpo"]}
    if base:
        meta["base_model"] = base
    # the data says the recipe (DPO trains on preference records, SFT on SFT records); every config has a dpo section
    record_type = (manifest or {}).get("record_type")
    recipe = {"preference": "SymDPO (DPO on symbol demonstrations)", "sft": "supervised fine-tuning"}.get(
        record_type, "fine-tuning")
    return (
        f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n"
        f"# {name}\n\n"
        f"A {family} model fine-tuned with symdpo: {recipe}, from `{base or 'a model built from a config'}`.\n\n"
        "## Use\n\n"
        "```python\nimport symdpo\n\n"
        "model = symdpo.load(\"PATH\")  # this folder (from the hub: hf download REPO --local-dir PATH)\n"
        "demos = [(\"cat.jpg\", \"What animal is this?\", \"cat\"), (\"dog.jpg\", \"What animal is this?\", \"dog\")]\n"
        "print(model.answer(demos, (\"query.jpg\", \"What animal is this?\")))\n```\n\n"
        "## Training data\n\n"
        f"{data_summary(manifest)}\n\n"
        "## Training configuration\n\n"
        f"```yaml\n{yaml.safe_dump(train_config, sort_keys=False)}```\n\n"
        "## Evaluation\n\n"
        f"{EVAL_START}\n{evaluation}\n{EVAL_END}\n"
    )


def write_card(folder: str | Path, *, base: str | None, family: str, train_config: dict[str, Any],
               manifest: dict[str, Any] | None) -> Path:
    """Write ``folder``/README.md for a fine-tune trained with ``train_config`` on data with ``manifest``; return it."""
    folder = Path(folder)
    path = folder / CARD
    name = folder.parent.name if folder.name == "final" else folder.name  # a run's final/: the run's name
    write_text(path, render(name=name, base=base, family=family, train_config=train_config,
                            manifest=manifest))
    return path


def add_evaluation(folder: str | Path, run_dir: str | Path) -> bool:
    """Put the results of the evaluation run ``run_dir`` into ``folder``'s card; return False without a card.

    Each run adds its own block (named by its folder); a run evaluated again replaces its block.
    """
    path = Path(folder) / CARD
    if not path.is_file() or EVAL_START not in (text := path.read_text()):
        return False
    run_dir = Path(run_dir)
    table = (run_dir / "results.md").read_text().strip()
    head, rest = text.split(EVAL_START, 1)
    body, tail = rest.split(EVAL_END, 1)
    blocks = [b for b in re.split(r"(?m)^(?=### run `)", body.strip()) if b.startswith("### run `")]
    mine = f"### run `{run_dir.name}`\n\n{table}\n"
    blocks = [b for b in blocks if not b.startswith(f"### run `{run_dir.name}`")] + [mine]
    write_text(path, f"{head}{EVAL_START}\n" + "\n".join(b.strip() + "\n" for b in blocks) + f"{EVAL_END}{tail}")
    return True
