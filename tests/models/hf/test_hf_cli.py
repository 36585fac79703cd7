"""One DPO step and one few-shot eval of an HF family through the same CLI commands as Flamingo."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[3]


def test_dpo_step_then_eval_through_the_clis(tmp_path):
    from symdpo.data.build import build
    from symdpo.data.options import BuildOptions, SymbolOptions
    from symdpo.eval.cli import app as eval_app
    from symdpo.train.cli import app as train_app

    pairs = tmp_path / "pairs.jsonl"
    build(BuildOptions(source="easyvqa", split="train", out=pairs, max_records=4, seed=0,
                       symbols=SymbolOptions(k_min=2, k_max=2)))
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(train_app, [
        "dpo", "--config", str(ROOT / "configs/tiny_dpo.yaml"), f"output_dir={out}", f"data.path={pairs}",
        "model.name=tiny-idefics3", "model.policy=connector", "optim.max_steps=1", "data.micro_batch_size=2", "data.global_batch_size=2",
        "logging.tensorboard=false", "logging.plot=false", "logging.progress=false",
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    step = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert step["step"] == 1 and step["loss"] == step["loss"]  # one finite DPO step
    final = out / "final"
    assert json.loads((final / "config.json").read_text())["base"] == "tiny-idefics3"
    res = runner.invoke(eval_app, [
        "run", "--model", str(final), "--task", "easyvqa", "--out", str(tmp_path / "eval"), "--shots", "2",
        "--trials", "1", "--num-samples", "2", "--query-set-size", "16", "--batch-size", "2", "--no-progress",
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert (tmp_path / "eval" / "results.json").is_file()
    assert json.loads((tmp_path / "eval" / "model.json").read_text())["class"] == "HFInterleavedLMM"
