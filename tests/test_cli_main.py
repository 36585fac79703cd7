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


def test_wrong_usage_is_one_line():
    """A wrong command, option or value: one line naming it on stderr, exit status 2, no traceback."""
    cases = {"no-such-command": ["no-such-command"], "--output": ["demo", "--output", "x"],
             "--max-records": ["data", "build", "--max-records", "ten"]}
    for named, args in cases.items():
        r = subprocess.run([sys.executable, "-m", "symdpo", *args], capture_output=True, text=True, timeout=300)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert lines[0].startswith("error: ") and named in lines[0]
