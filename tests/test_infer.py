"""``symdpo infer`` and ``symdpo.load(...).answer(...)`` on scikit-image's sample photos."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image
from skimage import data as skdata

import symdpo
from symdpo.eval.prompts import VQA_TEMPLATE, PromptItem, render_context


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        path = root / f"{name}.png"
        Image.fromarray(getattr(skdata, name)()).save(path)
        out[name] = path
    return out


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "symdpo", *args], capture_output=True, text=True, timeout=300)


def test_context_is_the_evaluation_template(photos):
    predictor = symdpo.load("tiny")
    ctx = predictor.context([(photos["chelsea"], "What animal?", "cat")], (photos["coffee"], "What animal?"))
    text = "".join(x if isinstance(x, str) else "<image>" for x in ctx)
    expected, _ = render_context(VQA_TEMPLATE, [PromptItem(None, {"question": "What animal?", "answer": "cat"})],
                                 PromptItem(None, {"question": "What animal?"}))
    assert text == expected == "<image>Question:What animal? Short answer:cat<|endofchunk|>\n<image>Question:What animal? Short answer:"
    assert sum(isinstance(x, Image.Image) for x in ctx) == 2


def test_cli_infer_runs_with_the_tiny_model(photos):
    r = run_cli("infer", "--model", "tiny", "--demo", str(photos["astronaut"]), "What is this?|a person",
                "--demo", str(photos["chelsea"]), "What is this?|a cat", "--query", str(photos["coffee"]), "What is this?")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n") and "\n" not in r.stdout[:-1]  # one answer line
    r = run_cli("infer", "--model", "tiny", "--task", "caption", "--demo", str(photos["chelsea"]), "A cat.",
                "--query", str(photos["rocket"]))
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_python_api_with_smollm2_flamingo(photos):
    predictor = symdpo.load("smollm2-flamingo")
    answer = predictor.answer([(photos["chelsea"], "What animal is this?", "cat")],
                              (photos["astronaut"], "What animal is this?"))
    assert isinstance(answer, str)
    caption = predictor.answer([(photos["chelsea"], "A cat lying on a sofa.")], photos["rocket"], task="caption")
    assert isinstance(caption, str)


@pytest.mark.parametrize("args,message", [
    (["--model", "tiny", "--demo", "/nonexistent/x.png", "Q?|a", "--query", "{coffee}", "Q?"], "image file not found"),
    (["--model", "no-such-model", "--query", "{coffee}", "Q?"], "unknown model"),
    (["--model", "tiny", "--demo", "{chelsea}", "Q?|a", "--query", "{coffee}"], "needs an image and a question"),
    (["--model", "tiny", "--demo", "{chelsea}", "--query", "{coffee}", "Q?"], "takes an image and a text"),
])
def test_cli_errors_are_one_line(photos, args, message):
    args = [a.format(**{k: str(v) for k, v in photos.items()}) for a in args]
    r = run_cli("infer", *args)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
