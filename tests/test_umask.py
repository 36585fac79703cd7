"""What data build, train and eval write carries the user's umask (colleagues on a shared cluster can read it).

Compared against: the permissions a plain ``open(path, "w")`` / ``mkdir`` gives under the same umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from symdpo.cli import app, run_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _cli(*args) -> None:
    """Run ``symdpo ARGS`` in this process; fail on a non-zero exit."""
    try:
        run_app(app, [str(a) for a in args], "symdpo")
    except SystemExit as e:
        assert not e.code, f"symdpo {' '.join(map(str, args))} exited {e.code}"


def _modes(*folders: Path) -> dict[str, int]:
    """Return {path: permission bits} of every file and folder under ``folders`` (and the folders)."""
    out = {}
    for folder in folders:
        for p in [folder, *folder.rglob("*")]:
            out[str(p)] = stat.S_IMODE(p.stat().st_mode)
    return out


def test_written_files_follow_the_umask(tmp_path, umask_022, monkeypatch):
    monkeypatch.setenv("SYMDPO_CACHE", str(tmp_path / "cache"))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "f").write_text("x")
    want_file, want_dir = stat.S_IMODE((plain / "f").stat().st_mode), stat.S_IMODE(plain.stat().st_mode)
    assert (want_file, want_dir) == (0o644, 0o755)

    data = tmp_path / "data"
    _cli("data", "build", "--source", "easyvqa", "--max-records", "8", "--k-max", "3", "--out", data / "pairs.jsonl")
    _cli("train", "dpo", "--config", ROOT / "configs/tiny_dpo.yaml", f"data.path={data / 'pairs.jsonl'}",
         f"output_dir={tmp_path / 'run'}", "optim.max_steps=2", "data.global_batch_size=4",
         "data.micro_batch_size=4", "checkpoint.every_steps=1", "logging.progress=false")
    _cli("eval", "run", "--model", tmp_path / "run/final", "--task", "easyvqa", "--shots", "0,2", "--trials", "1",
         "--num-samples", "2", "--no-progress", "--feature-cache", tmp_path / "features", "--out", tmp_path / "eval")
    modes = _modes(data, tmp_path / "run", tmp_path / "eval", tmp_path / "features")
    assert any(k.endswith(".reflogps-") or ".reflogps-" in k for k in modes)  # the reference cache is covered
    assert any("checkpoints/step-" in k for k in modes) and any(k.endswith("results.json") for k in modes)
    wrong = {k: oct(v) for k, v in modes.items() if v != (want_dir if Path(k).is_dir() else want_file)}
    assert not wrong, wrong
