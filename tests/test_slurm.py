"""scripts/slurm/train.sbatch derives each node's launch line from SLURM's variables (dry run, no cluster).

Compared with: hand-written expectations of accelerate's multi-node arguments for a 2-node, 4-GPU-per-node
allocation. ``scontrol`` and ``srun`` are stand-ins on PATH: scontrol expands the node list as SLURM would,
srun runs the task once per node with that node's SLURM_NODEID.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/slurm/train.sbatch"


def _stubs(bin_dir: Path) -> None:
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/bash\n[[ "$1 $2" == "show hostnames" ]] && printf "gpu-a17\\ngpu-a18\\n"\n')
    (bin_dir / "srun").write_text('#!/bin/bash\nshift\nfor i in $(seq 0 $((SLURM_NNODES - 1))); do '
                                  'SLURM_NODEID=$i "$@"; done\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)


def _dry_run(tmp_path: Path, *args: str, **env: str) -> list[list[str]]:
    _stubs(tmp_path / "bin")
    full = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SLURM_NNODES": "2",
            "SLURM_JOB_NODELIST": "gpu-a[17-18]", "SLURM_GPUS_ON_NODE": "4", "SLURM_JOB_NAME": "symdpo",
            "SLURM_JOB_ID": "42", "SYMDPO_DRY_RUN": "1", **env}
    r = subprocess.run(["bash", str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return [shlex.split(line) for line in r.stdout.splitlines()]


def test_each_node_gets_its_rank_and_the_first_nodes_address(tmp_path):
    lines = _dry_run(tmp_path, "optim.lr=1e-5")
    assert len(lines) == 2  # one launch per node
    for rank, line in enumerate(lines):
        assert line == ["accelerate", "launch", "--config_file", "configs/accelerate/fsdp.yaml", "--num_machines", "2",
                        "--num_processes", "8", "--machine_rank", str(rank), "--main_process_ip", "gpu-a17",
                        "--main_process_port", "29500", "-m", "symdpo.train.cli", "dpo", "--config",
                        "configs/openflamingo-3b-instruct_dpo.yaml", "output_dir=runs/symdpo", "optim.lr=1e-5"]


def test_a_requeued_job_resumes_from_its_checkpoints(tmp_path):
    (tmp_path / "runs/x/checkpoints/step-00000100").mkdir(parents=True)
    lines = _dry_run(tmp_path, OUTPUT_DIR="runs/x", RECIPE="sft", CONFIG="configs/tiny_sft.yaml",
                     ACCELERATE_CONFIG="configs/accelerate/deepspeed_zero3.yaml")
    for line in lines:
        assert line[line.index("-m") + 2:] == ["sft", "--config", "configs/tiny_sft.yaml", "output_dir=runs/x",
                                               "--resume"]
        assert line[line.index("--config_file") + 1] == "configs/accelerate/deepspeed_zero3.yaml"
