"""The dataset card (``README.md``) every ``symdpo data export`` folder carries.

It follows the Hugging Face dataset-card layout: YAML metadata first (task, tags, source datasets, size, and a
``configs`` entry pointing the Hub's viewer at ``data/train-*.parquet``), then how to train on it with TRL or
LLaMA-Factory and how it was built (the build manifest's summary, from ``models/card.py``'s ``data_summary``:
one summary for model and dataset cards). The license is left for the user: the data inherits the license of
the images and annotations it was built from, which symdpo cannot know.
"""

from __future__ import annotations

from typing import Any

import yaml

from symdpo.models.card import data_summary

LICENSE_NOTE = ("# license: set this to the license of the source images and annotations (e.g. cc-by-4.0) "
                "before pushing\n")
_USE = {
    "trl": ("## Train with TRL\n\n"
            "Columns: `images` (the context's images in order: demonstrations first, the query last), and `prompt`, "
            "`chosen`, `rejected` in TRL's conversational form, one `{{\"type\": \"image\"}}` where each image goes; "
            "`DPOTrainer` applies the model's chat template.\n\n"
            "```python\nfrom datasets import load_dataset\nfrom trl import DPOConfig, DPOTrainer\n\n"
            "data = load_dataset(\"REPO_OR_THIS_FOLDER\", split=\"train\")\n"
            "trainer = DPOTrainer(model=\"Qwen/Qwen2.5-VL-3B-Instruct\", args=DPOConfig(output_dir=\"out\"), "
            "train_dataset=data)\ntrainer.train()\n```\n\n"
            "symdpo trains on it as on its records (same contexts, same loss): `symdpo train dpo --config CONFIG "
            "data.path=THIS_FOLDER`.\n"),
    "llamafactory": ("## Train with LLaMA-Factory\n\n"
                     "Columns: `conversations` (sharegpt turns: each demonstration a `human` turn with one `<image>` "
                     "then its question, and a `gpt` turn with its answer; the query last), `chosen` and `rejected` "
                     "(`gpt` messages), `images` (in the order of the `<image>` placeholders). `dataset_info.json` "
                     "registers it as `{name}`: point LLaMA-Factory at this folder\n\n"
                     "```yaml\nstage: dpo\ndataset_dir: THIS_FOLDER\ndataset: {name}\ntemplate: qwen2_vl\n```\n"),
}


def size_category(n: int) -> str:
    """Return the Hub's ``size_categories`` value for ``n`` rows."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def build_summary(manifest: dict[str, Any] | None) -> str:
    """Return the Markdown lines of how the records were built: the manifest's summary, k range, options."""
    lines = [data_summary(manifest)]
    if manifest:
        symbols = manifest.get("options", {}).get("symbols", {})
        if symbols:
            lines.append(f"- demonstrations per context: {symbols.get('k_min')} to {symbols.get('k_max')}; "
                         f"ordinary (text-answer) contexts {symbols.get('icl_fraction')}; rejected-type weights "
                         f"{symbols.get('rejected_weights')}; wrong symbols: {symbols.get('wrong_symbol')}")
        if manifest.get("versions"):
            lines.append("- built with " + ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items())))
        lines.append("\nThe full build manifest (options, counts, the symbol list) is `manifest.json`.")
    return "\n".join(lines)


def render_card(*, fmt: str, name: str, rows: int, manifest: dict[str, Any] | None) -> str:
    """Return the dataset card's Markdown text for an export of ``rows`` rows in ``fmt``."""
    source = (manifest or {}).get("source", {}).get("name")
    meta: dict[str, Any] = {
        "task_categories": ["image-text-to-text"],
        "tags": ["symdpo", "dpo", "preference", "multimodal", "in-context-learning",
                 "trl" if fmt == "trl" else "llama-factory"],
        "size_categories": [size_category(rows)],
        "pretty_name": name,
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    }
    if source:
        meta["source_datasets"] = [source]
    return (
        f"---\n{LICENSE_NOTE}license: unknown\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n"
        f"# {name}\n\n"
        f"{rows} SymDPO preference pairs ({'TRL' if fmt == 'trl' else 'LLaMA-Factory'} layout), written by "
        "`symdpo data export`. Each pair is a few-shot context of image-question-answer demonstrations whose "
        "answers are replaced by symbols (and some ordinary contexts); the chosen answer is the symbol of the "
        "demonstration whose image matches the query's answer, so a model has to look at the demonstrations' "
        "images to prefer it (SymDPO, Jia et al., CVPR 2025).\n\n"
        f"{_USE[fmt].format(name=name)}\n"
        "## How it was built\n\n"
        f"{build_summary(manifest)}\n"
    )
