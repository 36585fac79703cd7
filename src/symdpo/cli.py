"""The ``symdpo`` command: data, train, eval, infer, demo and model sub-commands.

Errors a user can fix (a missing file, a malformed checkpoint or config, an unknown preset) are printed as
one line, without a traceback, and exit with status 1 (usage errors: 2; Ctrl-C: 130): ``symdpo.boundary``
catches them, ``symdpo.errors`` says how each reads.
"""

from __future__ import annotations

import sys

import typer

from symdpo.boundary import GuardedGroup, run_app
from symdpo.data.cli import app as data_app
from symdpo.eval.cli import app as eval_app
from symdpo.models.cli import app as model_app
from symdpo.train.cli import app as train_app

app = typer.Typer(cls=GuardedGroup, help="SymDPO: make multimodal models use the images in their in-context demonstrations.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(data_app, name="data", help="Build SymDPO preference and SFT data; inspect it, export it to TRL / LLaMA-Factory, push it.")
app.add_typer(eval_app, name="eval", help="Few-shot evaluation with the OpenFlamingo protocol; compare runs.")
app.add_typer(model_app, name="model")
app.add_typer(train_app, name="train", help="SFT and SymDPO training recipes (YAML config + dotted overrides).")


@app.command()
def infer(
    model: str = typer.Option(..., "--model", help="preset name or saved model directory"),
    demo: list[str] = typer.Option([], "--demo", help="a demonstration: IMAGE then its text (VQA: 'question|answer')"),
    query: list[str] = typer.Option(..., "--query", help="the query: IMAGE, then the question (VQA)"),
    task: str = typer.Option("vqa", help="vqa or caption: which evaluation template writes the context"),
    prompt_style: str = typer.Option(None, help="native (the model's own / chat format) or openflamingo; "
                                                "default: the model's"),
) -> None:
    """Answer a query image given your own demonstrations, e.g.
    ``symdpo infer --model tiny --demo cat.jpg "What animal?|cat" --query dog.jpg "What animal?"``."""
    from symdpo.infer import InferenceError, load
    from symdpo.models.prompts import KINDS, STYLES

    if task not in KINDS:
        raise InferenceError(f"--task must be {' or '.join(KINDS)}, not {task!r}")
    if prompt_style not in (None, *STYLES):
        raise InferenceError(f"--prompt-style must be {' or '.join(STYLES)}, not {prompt_style!r}")
    pairs = _image_text_pairs(demo, "--demo")
    if task == "vqa":
        if len(query) != 2:
            raise InferenceError("--query needs an image and a question for VQA")
        demos = []
        for image, text in pairs:
            if "|" not in text:
                raise InferenceError(f"VQA demonstration text must be 'question|answer', got {text!r}")
            q, a = text.split("|", 1)
            demos.append((image, q, a))
        q_item = (query[0], query[1])
    else:
        demos, q_item = pairs, (query[0],)
    predictor = load(model, prompt_style=prompt_style)
    typer.echo(predictor.answer(demos, q_item, task=task))


def _image_text_pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    # typer collects "--demo IMG TEXT" as IMG and TEXT in turn (see main's argv rewrite)
    if len(values) % 2:
        raise ValueError(f"{flag} takes an image and a text each time")
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


@app.command()
def demo(
    out: str = typer.Option("runs/demo", help="report folder (reused: finished steps are not redone)"),
    quick: bool = typer.Option(False, "--quick", help="a smaller run (under a minute) for CI"),
    seed: int = typer.Option(0, help="seed of the SymDPO pairs and training order (held-out contexts fixed)"),
    seeds: str = typer.Option(None, help="several seeds, e.g. 0,1,2: one run each in OUT/seed-N, then the "
                                         "mean ± std of every score"),
) -> None:
    """Run the embedded end-to-end demo: easy-VQA, tiny Flamingo, SymDPO, before/after evaluation (CPU)."""
    from symdpo.demo import run_demo, run_demos
    from symdpo.errors import UsageError

    if seeds is None:
        run_demo(out, quick=quick, seed=seed)
        return
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    run_demos(out, seed_list, quick=quick)


@app.command("app")
def web_app(
    models: str = typer.Option(",".join(("tiny-easyvqa", "tiny")), help="models offered in the pickers, "
                               "comma-separated presets or saved folders (any other can be typed in)"),
    host: str = typer.Option("127.0.0.1", help="address to serve on (0.0.0.0: reachable from other machines)"),
    port: int = typer.Option(7860),
) -> None:
    """Start a local web app: compare models' answers on your own demonstrations, with and without their images."""
    from symdpo.app import launch

    launch(host=host, port=port, models=[m.strip() for m in models.split(",") if m.strip()])


def _expand_two_value_options(argv: list[str]) -> list[str]:
    """Return argv with ``--demo IMG TEXT`` / ``--query IMG TEXT`` written as one option per value."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--demo", "--query"):
            j = i + 1
            while j < len(argv) and j < i + 3 and not argv[j].startswith("--"):
                out += [arg, argv[j]]
                j += 1
            if j == i + 1:
                out.append(arg)
            i = j
        else:
            out.append(arg)
            i += 1
    return out


def main() -> None:
    """Run the ``symdpo`` command (set SYMDPO_DEBUG=1 to see tracebacks instead of one-line errors)."""
    run_app(app, _expand_two_value_options(sys.argv[1:]), "symdpo")


if __name__ == "__main__":
    main()
