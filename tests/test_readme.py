"""Every `symdpo` command in the README's ```bash blocks runs, on tiny settings.

The commands run as written in a scratch folder that holds what they expect: `configs/` and the demo's symbols
file from the repository,
the easy-VQA package (offline), VQAv2-format annotation files with the official names and a COCO-style image
folder made here, a VL-ICL folder in its published layout (tests/eval/vlicl_fixtures.py), and two photos for
`symdpo infer`. Only these changes are made, each for speed or because
no GPU/hub is here: model presets that download (OpenFlamingo, IDEFICS, SmolVLM) become their tiny offline
versions; training runs 2 optimiser steps in fp32; evaluation runs 4 items, 1 trial, 2 shots. The `make`
lines are not run here: `make test` is this suite, and `symdpo demo` (what `make demo` runs) has its own test.
The accelerate launch and sbatch lines are in ```text blocks: GPU-only, except the CPU launch line, which
tests/train/test_sharded.py runs for every shipped config (and tests/test_slurm.py dry-runs the sbatch script).
"""

from __future__ import annotations

import json
import random
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
TINY = {"openflamingo-3b-instruct": "tiny", "openflamingo-9b": "tiny", "idefics-9b": "tiny-idefics",
        "smolvlm-256m": "tiny-smolvlm"}
QUESTIONS = ["what color is the cat?", "is the man smiling?", "what is on the table?"]
ANSWERS = [["white", "black", "orange"], ["yes", "no"], ["cup", "book", "plate"]]


def readme_commands() -> list[str]:
    """Return the command lines of the README's ```bash blocks."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def write_vqa(folder: Path, subtype: str, n_images: int, first_id: int) -> None:
    """Write VQAv2-format questions/annotations (official file names) and COCO-style images."""
    rng = random.Random(first_id)
    qs, anns = [], []
    for k in range(n_images):
        image_id = first_id + k
        path = folder / "coco" / subtype / f"COCO_{subtype}_{image_id:012d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 40), tuple(rng.randrange(256) for _ in range(3))).save(path, "JPEG")
        for j, (question, answers) in enumerate(zip(QUESTIONS, ANSWERS, strict=True)):
            qid = image_id * 10 + j
            answer = answers[(k + j) % len(answers)]
            qs.append({"image_id": image_id, "question": question, "question_id": qid})
            anns.append({"question_type": "what", "multiple_choice_answer": answer, "image_id": image_id,
                         "answer_type": "other", "question_id": qid,
                         "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": i + 1} for i in range(10)]})
    vqa = folder / "vqav2"
    vqa.mkdir(parents=True, exist_ok=True)
    (vqa / f"v2_OpenEnded_mscoco_{subtype}_questions.json").write_text(
        json.dumps({"data_subtype": subtype, "questions": qs}))
    (vqa / f"v2_mscoco_{subtype}_annotations.json").write_text(json.dumps({"data_subtype": subtype, "annotations": anns}))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "configs", work / "configs")
    symbols = "src/symdpo/assets/tiny-symbols.txt"  # the demo's symbols, named by the starting model's recipe
    (work / symbols).parent.mkdir(parents=True)
    shutil.copy(ROOT / symbols, work / symbols)
    write_vqa(work / "data", "train2014", 16, 1000)
    write_vqa(work / "data", "val2014", 6, 5000)
    ood = work / "data" / "flickr30k" / "flickr30k-images"  # another source's photos, for --ood-images
    ood.mkdir(parents=True)
    for name in ("coffee", "rocket", "chelsea"):
        Image.fromarray(getattr(skdata, name)()).resize((48, 40)).save(ood / f"{name}.jpg")
    from vlicl_fixtures import write_all

    write_all(work / "VL-ICL")
    Image.fromarray(skdata.chelsea()).save(work / "cat.png")
    Image.fromarray(skdata.astronaut()).save(work / "dog.png")
    return work


def tiny_settings(args: list[str]) -> list[str]:
    """Return the command with download-free models and small budgets (see the module docstring)."""
    args = [TINY.get(a, a) for a in args]
    args = [f"model.name={TINY[a.split('=', 1)[1]]}" if a.startswith("model.name=") and a.split("=", 1)[1] in TINY
            else a for a in args]
    if args[:2] == ["train", "dpo"] or args[:2] == ["train", "sft"]:
        if not any(a.startswith("model.name=") for a in args):  # the config's own hub model -> its tiny twin
            config = yaml.safe_load((ROOT / args[args.index("--config") + 1]).read_text())
            args += [f"model.name={TINY.get(config['model']['name'], config['model']['name'])}", "model.dtype=float32"]
        args += ["optim.max_steps=2", "precision=no", "logging.progress=false", "logging.tensorboard=false"]
    if args[:2] == ["eval", "run"] and not args[args.index("--task") + 1].startswith("easyvqa"):
        args += ["--shots", "2", "--trials", "1", "--num-samples", "4", "--query-set-size", "24", "--threads", "1",
                 "--no-progress"]
    elif args[:2] == ["eval", "run"]:  # the quick start's own settings: tiny already, and its scores are checked
        args += ["--threads", "1", "--no-progress"]
    return args


def quick_start_commands() -> list[str]:
    """Return the command lines of the README's quick start (the first ```bash block of 'Try it')."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Try it on this machine"):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_has_the_commands():
    commands = readme_commands()
    assert "make test" in commands and "make demo" in commands
    assert sum(c.startswith("symdpo ") for c in commands) >= 12


def test_every_readme_command_runs(workdir):
    ran, outputs = [], {}
    for line in readme_commands():
        if line.startswith("make "):
            continue
        args = shlex.split(line)
        assert args[0] == "symdpo", f"README command not covered by this test: {line}"
        args = tiny_settings(args[1:])
        r = subprocess.run([sys.executable, "-m", "symdpo", *args], cwd=workdir, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, f"{line}\n--- stdout\n{r.stdout[-2000:]}\n--- stderr\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, line
        ran.append(line)
        outputs[line] = r.stdout
    assert (workdir / "runs" / "eval_of3b_symdpo" / "results.json").exists()
    assert (workdir / "runs" / "easyvqa_dpo_full" / "model.safetensors").exists()
    assert len(ran) >= 12
    check_quick_start_answers(workdir, outputs)


COLOURS = {"red", "green", "blue", "black", "gray", "teal", "brown", "yellow"}  # easy-VQA's colour answers


def check_quick_start_answers(workdir: Path, outputs: dict[str, str]) -> None:
    """The quick start's evaluations score above zero, and `infer` answers with a colour (compared against:
    easy-VQA's own answer set), on the shipped starting model and on the model the quick start trains."""
    lines = quick_start_commands()
    evals = [shlex.split(ln) for ln in lines if ln.startswith("symdpo eval run")]
    assert len(evals) >= 2
    for args in evals:
        results = json.loads((workdir / args[args.index("--out") + 1] / "results.json").read_text())
        scores = [c["mean"] for c in results["results"]]
        assert scores and max(scores) > 0, (args, scores)
    symbols = [ln for ln in lines if ln.startswith("symdpo eval symbols")]
    assert symbols and all(re.search(r"accuracy, real demo images: [1-9]", outputs[ln]) for ln in symbols)
    infers = [ln for ln in lines if ln.startswith("symdpo infer")]
    assert infers and all(outputs[ln].strip() in COLOURS for ln in infers), [outputs[ln] for ln in infers]
