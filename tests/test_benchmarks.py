"""Every script in benchmarks/ still runs end to end and still prints its headline.

Each benchmark is run here as a user runs it (a child process from the repository root) at its smallest size,
and its last stdout line (the headline figure: a ratio, an accuracy, a time) must have the shape the script
prints. A benchmark is otherwise run only by hand, so an API change in ``symdpo`` that breaks one went unseen
until someone needed its figure (benchmarks/dpo_step_gpu.py imported a function that no longer existed). The
figures of these runs are not checked: at these sizes they mean nothing.

Three scripts have their own, fuller tests: benchmarks/gpu.py (tests/train/test_gpu_benchmark.py),
benchmarks/scale_gpu.py (tests/train/test_scale_benchmark.py), benchmarks/eval_throughput.py
(tests/eval/test_eval_throughput_benchmark.py). ``test_every_benchmark_has_a_smoke_test`` fails when a script
is added to benchmarks/ without a test, here or there (benchmarks/common.py, which the scripts import, is not a
script).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# script -> (arguments of its smallest run, regex of its last stdout line); ~5-20 s each on 2 CPU cores
SMOKE = {
    "build_data.py": (
        ["--questions", "500", "--images", "100"],
        r"build_data: 500 VQAv2-format questions -> SymDPO pairs in \d+\.\d s \(\d+\.\d s CPU\), "
        r"peak RSS \d+\.\d\d GiB \(PASS: < 120 s, < 4 GiB\)"),
    "dpo_step.py": (
        ["--size", "tiny", "--repeats", "1"],
        r"shared-prefix vs naive step time ratio: \d+\.\d\dx"),
    "dpo_step_gpu.py": (  # on the GPU when there is one, else on the CPU
        ["--size", "tiny", "--pairs", "1", "--steps", "1", "--warmup", "1"],
        r"shared-prefix vs naive step time ratio \(tiny, 1 pairs, bf16, [^()]+\): \d+\.\d\dx"),
    "export.py": (
        ["--records", "200", "--base", "50"],
        r"export: 200 SymDPO records -> trl in \d+\.\d s, peak RSS \d+\.\d\d GiB, anonymous \d+\.\d\d GiB "
        r"\(20 records: \d+\.\d s, \d+\.\d\d GiB, anonymous \d+\.\d\d GiB; anonymous ratio \d+\.\d\d\)"),
    "family_learning.py": (  # every family's preset
        ["--steps", "2", "--records", "16"],
        r"lowest family's rewards/accuracies after 2 steps: \d\.\d\d"),
    "generate.py": (
        ["--repeats", "1", "--new-tokens", "2"],
        r"ours vs reference generated tokens/s ratio \(3-beam\): \d+\.\d\dx"),
    "symbol_matching.py": (
        ["--steps", "1", "--every", "1", "--probes", "2"],
        r"symbol-matching accuracy after 1 steps, gates from 0\.0 vs 0\.1: \d+\.\d% vs \d+\.\d% "
        r"\(blank demo images \d+\.\d% vs \d+\.\d%; chance 41\.7%\)"),
}
# scripts whose smoke run lives in another test file (which must name the script)
ELSEWHERE = {
    "eval_throughput.py": "tests/eval/test_eval_throughput_benchmark.py",
    "gpu.py": "tests/train/test_gpu_benchmark.py",
    "scale_gpu.py": "tests/train/test_scale_benchmark.py",
}


def test_every_benchmark_has_a_smoke_test():
    scripts = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "common.py")
    assert scripts == sorted([*SMOKE, *ELSEWHERE]), "a benchmark without a smoke test (add it to SMOKE)"
    for script, test in ELSEWHERE.items():
        assert re.search(rf"\b{re.escape(script)}", (ROOT / test).read_text()), f"{test} does not run {script}"


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs_and_prints_its_headline(script, tmp_path):
    args, headline = SMOKE[script]
    # one thread: the suite shares 2 cores; TMPDIR: what a script leaves behind goes with pytest's tmp_path
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, f"benchmarks/{script}", *args], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, f"{script} exited {r.returncode}:\n{r.stderr[-3000:]}"
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing:\n{r.stderr[-3000:]}"
    assert re.fullmatch(headline, lines[-1]), f"{script}'s last line is not its headline:\n" + "\n".join(lines[-5:])
