"""``symdpo data export`` / ``data push``: SymDPO records in TRL's and LLaMA-Factory's preference layouts.

What each test compares against is something symdpo did not write: TRL's own ``DPOTrainer`` (trl 1.x, its
``DataCollatorForVisionPreference`` and the model's chat template) trains on the TRL export; the LLaMA-Factory
export is checked against the sharegpt preference schema its ``data/README.md`` documents (field names,
``human``/``gpt`` roles alternating and ending on ``human``, ``chosen``/``rejected`` messages, one ``<image>``
per image, the ``dataset_info.json`` entry with ``formatting: sharegpt``, ``ranking: true``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from symdpo.data.cli import app
from symdpo.data.export import export
from symdpo.data.images import load_image
from symdpo.data.manifest import manifest_image_root
from symdpo.data.recordio import read_records

# the published Qwen2-VL chat template, kept outside the project (see ../shared/chat_templates/SOURCES.md)
QWEN2_VL_TEMPLATE = Path(__file__).resolve().parents[2].parent / "shared" / "chat_templates" / "qwen2-vl.jinja"
runner = CliRunner()


def _build(out: Path, n: int, mode: str = "preference") -> Path:
    from symdpo.data.build import build
    from symdpo.data.options import BuildOptions, SymbolOptions

    build(BuildOptions(source="easyvqa", split="train", out=out, max_records=n, seed=0, mode=mode,
                       symbols=SymbolOptions(k_min=2, k_max=3)))
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Return 8 easy-VQA SymDPO pairs (with their manifest)."""
    return _build(tmp_path_factory.mktemp("records") / "pairs.jsonl", 8)


def _image_root(records: Path) -> Path:
    return manifest_image_root(records)


def test_trl_dpo_trainer_trains_on_the_export_and_sees_the_records(pairs, tmp_path):
    """TRL's DPOTrainer (its own collator and chat-template code) trains 2 steps on the TRL export of easy-VQA
    SymDPO records with a tiny Qwen2-VL; the chosen/rejected texts it tokenizes are the records' answers and the
    images it hands the processor are each context's images in order."""
    assert QWEN2_VL_TEMPLATE.is_file(), f"the published Qwen2-VL chat template is not at {QWEN2_VL_TEMPLATE}"
    import trl
    from datasets import load_dataset
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from symdpo.models.hf.families import tiny_model

    export(pairs, "trl", tmp_path / "trl")
    # as from the Hub: the card's configs, the parquet shards (a fresh cache: datasets keys a local folder's
    # cache by its name and card, so another folder named trl/ would be served from the cache)
    data = load_dataset(str(tmp_path / "trl"), split="train", cache_dir=str(tmp_path / "hf-cache"))
    records = {r.id: r for r in read_records(pairs)}
    root = _image_root(pairs)
    model, processor = tiny_model("qwen2_vl")
    processor.chat_template = QWEN2_VL_TEMPLATE.read_text()  # the tiny processor has none
    seen = []  # per batch: (ids, the images handed to the processor, completion token ids of chosen, rejected)

    class Recording(DataCollatorForVisionPreference):
        def torch_call(self, examples):
            ids = [ex["id"] for ex in examples]
            batch = super().torch_call(examples)
            ids_, mask = batch["input_ids"], batch["completion_mask"].bool()
            completions = [ids_[i][mask[i]].tolist() for i in range(len(ids_))]
            seen.append((ids, calls[-1], completions[:len(ids)], completions[len(ids):]))
            return batch

    calls = []
    original = type(processor).__call__

    def recording_call(self, *args, images=None, **kwargs):
        if images is not None:
            calls.append(images)
        return original(self, *args, images=images, **kwargs)

    processor.__class__ = type("Recording" + type(processor).__name__, (type(processor),), {"__call__": recording_call})
    args = trl.DPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_steps=2,
                         report_to="none", use_cpu=True, bf16=False, fp16=False, save_strategy="no",
                         logging_steps=1, remove_unused_columns=False)
    ref, _ = tiny_model("qwen2_vl", seed=1)  # given, as TRL otherwise reloads the policy by its (absent) hub name
    trainer = trl.DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data, processing_class=processor,
                             data_collator=Recording(processor=processor))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert len(seen) >= 2
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for ids, images, chosen, rejected in seen:
        assert len(images) == 2 * len(ids)  # the collator passes each context's images for chosen and rejected
        for i, rid in enumerate(ids):
            rec = records[rid]
            for got, want in ((chosen[i], rec.chosen), (rejected[i], rec.rejected)):
                text = processor.tokenizer.decode(got[:got.index(end)], skip_special_tokens=False)
                assert text.replace(" ", "") == want.replace(" ", "")  # the tiny BPE decodes with spaces
            for got_images in (images[i], images[len(ids) + i]):
                assert len(got_images) == len(rec.images)
                for img, rel in zip(got_images, rec.images, strict=True):
                    assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(load_image(root, rel)))


def test_llamafactory_export_follows_the_documented_sharegpt_preference_schema(pairs, tmp_path):
    """LLaMA-Factory's data/README.md: sharegpt preference rows (``conversations`` of from/value turns, human
    at odd and gpt at even positions, ending on human; ``chosen``/``rejected`` gpt messages; ``images`` with one
    ``<image>`` per image) and the dataset_info.json entry (formatting sharegpt, ranking true, columns)."""
    import pyarrow.parquet as pq

    out = tmp_path / "lf"
    export(pairs, "llamafactory", out, name="symdpo_easyvqa")
    info = json.loads((out / "dataset_info.json").read_text())
    entry = info["symdpo_easyvqa"]
    assert entry["formatting"] == "sharegpt" and entry["ranking"] is True
    assert entry["columns"] == {"messages": "conversations", "chosen": "chosen", "rejected": "rejected",
                                "images": "images"}
    files = sorted((out / entry["file_name"]).iterdir())  # a folder: LLaMA-Factory reads every file in it
    assert files and all(f.suffix == ".parquet" for f in files)
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    records = {r.id: r for r in read_records(pairs)}
    assert len(rows) == len(records)
    for row in rows:
        rec = records[row["id"]]
        turns = row[entry["columns"]["messages"]]
        assert all(set(t) == {"from", "value"} for t in turns)
        assert [t["from"] for t in turns] == ["human", "gpt"] * len(rec.context) + ["human"]
        assert row["chosen"] == {"from": "gpt", "value": rec.chosen}
        assert row["rejected"] == {"from": "gpt", "value": rec.rejected}
        assert sum(t["value"].count("<image>") for t in turns) == len(row["images"]) == len(rec.images)
        assert [t["value"] for t in turns[1::2]] == [d.answer for d in rec.context]
        assert turns[-1]["value"] == "<image>" + rec.query.question
        root = _image_root(pairs)
        for image, rel in zip(row["images"], rec.images, strict=True):  # embedded: the file's own bytes
            assert image["bytes"] == (root / rel).read_bytes()


def test_card_and_save_to_disk_copy(pairs, tmp_path):
    """The card carries Hub metadata (task, license for the user, source, configs) and the build's manifest
    summary; ``datasets.load_from_disk`` reads the ``dataset/`` copy."""
    import yaml
    from datasets import load_from_disk

    out = tmp_path / "trl"
    result = runner.invoke(app, ["export", str(pairs), "--format", "trl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "unknown" and "license:" in text.split("---\n")[1].splitlines()[0]
    assert meta["task_categories"] == ["image-text-to-text"] and meta["source_datasets"] == ["easyvqa"]
    assert meta["configs"][0]["data_files"][0]["path"] == "data/train-*"
    assert "8 preference records, seed 0" in text and "demonstrations per context: 2 to 3" in text
    assert json.loads((out / "manifest.json").read_text()) == json.loads(Path(f"{pairs}.manifest.json").read_text())
    assert len(load_from_disk(str(out / "dataset"))) == 8


def test_push_uploads_the_export_as_a_dataset_repo(pairs, tmp_path, hf_api_calls):
    """``data push`` goes through huggingface_hub's HfApi (recorded here, never sent) as a dataset repo,
    leaving the local save_to_disk copy out."""
    calls = hf_api_calls
    out = tmp_path / "trl"
    export(pairs, "trl", out)
    result = runner.invoke(app, ["push", str(out), "--repo", "someone/symdpo-easyvqa"])
    assert result.exit_code == 0, result.output
    assert calls[1] == ("create_repo", "someone/symdpo-easyvqa",
                        {"repo_type": "dataset", "private": False, "exist_ok": True})
    assert calls[2][1]["repo_type"] == "dataset" and calls[2][1]["folder_path"] == str(out)
    assert "dataset/*" in calls[2][1]["ignore_patterns"]


def _one_line(result) -> str:
    """Return the CLI's error output, asserting it is one line (no traceback)."""
    text = result.output.strip()
    assert result.exit_code != 0 and "\n" not in text and "Traceback" not in text, text
    return text


def test_bad_input_is_one_line(pairs, tmp_path):
    sft = _build(tmp_path / "sft.jsonl", 4, mode="sft")
    (tmp_path / "exists").mkdir()
    cases = [
        (["export", str(sft), "--format", "trl", "--out", str(tmp_path / "a")], "export takes preference records"),
        (["export", str(pairs), "--format", "axolotl", "--out", str(tmp_path / "b")],
         "unknown export format 'axolotl'; choose trl or llamafactory"),
        (["export", str(pairs), "--format", "trl", "--out", str(tmp_path / "exists")], "already exists"),
        (["export", str(tmp_path / "nope.jsonl"), "--format", "trl", "--out", str(tmp_path / "c")], "file not found"),
        (["export", str(pairs), "--format", "trl", "--out", str(tmp_path / "d"), "--image-root", str(tmp_path)],
         "cannot be read under"),
        (["push", str(tmp_path / "exists"), "--repo", "a/b"], "no README.md dataset card"),
    ]
    for argv, expected in cases:
        text = _one_line(runner.invoke(app, argv))
        assert expected in text, (argv, text)
    assert not (tmp_path / "d").exists()  # a failed export leaves no folder


def test_sft_records_without_manifest_are_refused(tmp_path):
    """Without the manifest's record_type, the first SFT record stops the export (one line)."""
    sft = _build(tmp_path / "sft.jsonl", 4, mode="sft")
    root = _image_root(sft)
    Path(f"{sft}.manifest.json").unlink()
    text = _one_line(runner.invoke(app, ["export", str(sft), "--format", "llamafactory", "--out",
                                         str(tmp_path / "o"), "--image-root", str(root)]))
    assert "holds SFT records" in text and not (tmp_path / "o").exists()
