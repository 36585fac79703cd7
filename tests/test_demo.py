"""`symdpo demo --quick`: the whole loop (data -> SymDPO -> before/after evaluation) writes its report.

What the demo measures is printed as measured; this test checks the pipeline and the report, not an effect
size (the quick run trains 16 steps).
"""

from __future__ import annotations

import json

import pytest

from symdpo.demo import STARTING_MODEL, THREADS, run_demo


def test_quick_demo_writes_its_report(tmp_path):
    import torch

    threads = torch.get_num_threads()
    results = run_demo(tmp_path / "demo", quick=True)
    saved = json.loads((tmp_path / "demo" / "results.json").read_text())
    # the fixed thread count is recorded, and the caller's torch settings are back afterwards
    assert saved["threads"] == THREADS and saved["torch"] == torch.__version__
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    assert saved["before"] == results["before"] and saved["after"] == results["after"]
    assert set(results["reliance"]) == {"symbol_icl", "easyvqa-open/4-shot", "easyvqa-open/8-shot"}
    for base, drop in saved["reliance"].items():  # each drop is the real score minus the blank one, as saved
        for when in ("before", "after"):
            assert drop[when] == pytest.approx(saved[when][f"{base}/real"] - saved[when][f"{base}/blank"])
    for name in ("before_after.png", "examples.png"):
        assert (tmp_path / "demo" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "demo" / "train" / "final" / "config.json").exists()
    assert (STARTING_MODEL / "model.safetensors").exists()  # the shipped starting checkpoint
    # the folder's finished steps are reused, so a run with other settings must not pick them up
    with pytest.raises(ValueError, match="other settings"):
        run_demo(tmp_path / "demo", quick=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stale.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        run_demo(tmp_path / "other", quick=True)


def test_eval_symbols_command(tmp_path):
    import subprocess
    import sys

    run = [sys.executable, "-m", "symdpo"]
    probes = tmp_path / "probes.jsonl"
    r = subprocess.run([*run, "data", "build", "--source", "easyvqa", "--split", "test", "--icl-fraction", "0",
                        "--max-records", "12", "--k-max", "3", "--out", str(probes)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*run, "eval", "symbols", "--model", str(STARTING_MODEL), "--probes", str(probes),
                        "--out", str(tmp_path / "scores.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())["scores"]
    assert set(scores) == {"real", "blank"} and scores["real"]["n"] == 12
    assert "symbol-ICL accuracy, blank demo images" in r.stdout


@pytest.mark.ci  # three quick demos, about 3 minutes: make test-ci
def test_seeds_summary_and_two_runs_agree(tmp_path):
    """`--seeds 0,1`: each seed's run matches a separate run with that seed into a fresh folder (the demo is
    deterministic), and the summary's mean ± std equal numpy's over the per-seed results.json files."""
    import numpy as np

    from symdpo.demo import run_demos

    summary = run_demos(tmp_path / "many", [0, 1], quick=True)
    per_seed = {s: json.loads((tmp_path / "many" / f"seed-{s}" / "results.json").read_text()) for s in (0, 1)}
    again = run_demo(tmp_path / "again", quick=True, seed=1)
    assert again["before"] == per_seed[1]["before"] and again["after"] == per_seed[1]["after"]
    for key, cell in summary["after"].items():
        values = [per_seed[s]["after"][key] for s in (0, 1)]
        assert cell["per_seed"] == values
        assert cell["mean"] == pytest.approx(np.mean(values)) and cell["std"] == pytest.approx(np.std(values))
    assert json.loads((tmp_path / "many" / "summary.json").read_text())["seeds"] == [0, 1]
    table = (tmp_path / "many" / "summary.md").read_text().splitlines()  # the README's table format
    assert table[0] == "| metric | starting model | SymDPO mean ± std | seed 0 | seed 1 |"
    first = summary["after"]["symbol_icl/real"]
    assert table[2] == (f"| symbol_icl/real | {summary['before']['symbol_icl/real']:.1f} | {first['mean']:.1f} ± "
                        f"{first['std']:.1f} | {first['per_seed'][0]:.1f} | {first['per_seed'][1]:.1f} |")
