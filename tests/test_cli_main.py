"""The `symdpo` entry point: a sub-command's failure is the process's exit status, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_subcommand_errors_reach_the_exit_status(tmp_path):
    r = subprocess.run([sys.executable, "-m", "symdpo", "eval", "run", "--model", "tiny", "--task", "no-such-task",
                        "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no-such-task" in r.stderr and "Traceback" not in r.stderr


def test_train_precision_no_on_the_command_line(tmp_path):
    from symdpo.config import load_config
    from symdpo.train.config import TrainConfig

    config = Path(__file__).resolve().parents[1] / "configs" / "tiny_dpo.yaml"
    cfg = load_config(config, ["precision=no"], TrainConfig)  # YAML reads bare `no` as False
    assert cfg.precision == "no"
