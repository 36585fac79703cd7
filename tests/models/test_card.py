"""Model cards of saved fine-tunes, their evaluation section, and `symdpo model push`.

Compared with: huggingface_hub's own ModelCard parser (the metadata the hub reads), the run's
train_config.json and the data manifest written by `symdpo data build`, and the eval run's results.md. The
hub is unreachable here: the push is checked on the folder it uploads and on its calls to a stand-in of
huggingface_hub's HfApi (the one network step), never against the hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _symdpo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "symdpo", *args], env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Return the final/ folder of a 2-step tiny SymDPO run on 24 easy-VQA pairs."""
    tmp = tmp_path_factory.mktemp("card")
    data = tmp / "pairs.jsonl"
    r = _symdpo("data", "build", "--source", "easyvqa", "--out", str(data), "--max-records", "24", "--k-max", "3")
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "symdpo.train.cli", "dpo", "--config", str(ROOT / "configs/tiny_dpo.yaml"),
                        f"data.path={data}", f"output_dir={tmp / 'run'}", "optim.max_steps=2", "data.micro_batch_size=4",
                        "data.global_batch_size=4", "logging.progress=false", "logging.tensorboard=false",
                        "logging.plot=false"], env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "run" / "final"


def test_training_writes_a_card_the_hub_reads(trained):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained / "README.md")
    assert card.data.base_model == "tiny" and card.data.library_name == "symdpo"
    assert "symdpo" in card.data.tags
    text = card.text
    config = json.loads((trained.parent / "train_config.json").read_text())
    block = text.split("## Training configuration\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == config  # the resolved config, exactly
    manifest = json.loads(Path(f"{config['data']['path']}.manifest.json").read_text())
    counts = manifest["counts"]
    assert f"{counts['records']} preference records" in text
    assert "rejected answers: " + ", ".join(f"{k} {v}" for k, v in sorted(counts["by_rejected_type"].items())) in text
    assert "Not evaluated yet" in text


def test_an_evaluation_of_the_folder_fills_its_card(trained, tmp_path):
    args = ["eval", "run", "--model", str(trained), "--task", "easyvqa", "--shots", "0", "--trials", "1",
            "--num-samples", "3", "--batch-size", "3", "--no-progress"]
    for _ in range(2):  # the same run again replaces its block, it does not pile up
        r = _symdpo(*args, "--out", str(tmp_path / "eval-a"))
        assert r.returncode == 0, r.stderr[-3000:]
    text = (trained / "README.md").read_text()
    table = (tmp_path / "eval-a" / "results.md").read_text().strip()
    assert text.count("### run `eval-a`") == 1 and table in text
    assert "Not evaluated yet" not in text


def test_export_keeps_the_card(trained, tmp_path):
    r = _symdpo("model", "export", str(trained), "--out", str(tmp_path / "full"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "full" / "README.md").read_text() == (trained / "README.md").read_text()


def test_push_uploads_the_folder_through_huggingface_hub(trained, hf_api_calls):
    from symdpo.models.push import files_to_upload, push

    calls = hf_api_calls
    url = push(trained, "someone/tiny-symdpo", private=True)
    assert url == "https://huggingface.co/someone/tiny-symdpo/commit/abc"
    assert calls[1] == ("create_repo", "someone/tiny-symdpo", {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls[2][1]["folder_path"] == str(trained) and calls[2][1]["repo_id"] == "someone/tiny-symdpo"
    assert {"README.md", "config.json", "trainable.safetensors"} <= set(files_to_upload(trained))


@pytest.mark.parametrize("make, expected", [
    (lambda p: p, "not a folder"),
    (lambda p: (p.mkdir(), p)[1], "no config.json"),
    (lambda p: (p.mkdir(), (p / "config.json").write_text("{}"), p)[2], "no README.md model card"),
])
def test_push_refuses_what_is_no_saved_model_in_one_line(tmp_path, make, expected):
    folder = make(tmp_path / "m")
    r = _symdpo("model", "push", str(folder), "--repo", "someone/x")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr
