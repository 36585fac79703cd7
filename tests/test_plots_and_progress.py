"""The training curves PNG, the shot-curve plots, the non-TTY progress lines and the presets table."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from symdpo.eval.report.figures import plot_curves as plot_shots
from symdpo.eval.report.figures import shot_curve_figure
from symdpo.models.registry import presets
from symdpo.train.dpo import DPOObjective
from symdpo.train.tracking import PlainProgress, curves_figure, plot_curves, progress_bar


def _rows(steps: int = 20, *, wrong_symbol: bool = True, eval_every: int = 0) -> list[dict]:
    rows = []
    for s in range(1, steps + 1):
        r = {"step": s, "loss": max(0.0, 0.2 - s / 50), "rewards/accuracies": 0.5 + s / 100, "rewards/margins": s / 10,
             "rewards/chosen": -0.2 + s / 50, "rewards/rejected": -s / 20, "lr": 1e-5}
        if wrong_symbol:
            r["rewards/accuracies/wrong_symbol"] = 0.4 + s / 100
        rows.append(r)
        if eval_every and s % eval_every == 0:
            rows.append({"step": s, "eval/loss": 0.3 - s / 100, "eval/rewards/accuracies": 0.45 + s / 100})
    return rows


def _titles(fig) -> list[str]:
    return [ax.get_title().replace("\n", "/") for ax in fig.axes]


def test_training_png_is_a_grid_not_a_strip(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    out = plot_curves(path, tmp_path / "curves.png", DPOObjective.plot_keys)
    width, height = Image.open(out).size
    assert 0.4 <= height / width <= 1.2, (width, height)


def test_training_panels_cover_wrong_symbol_and_read_well():
    import matplotlib.pyplot as plt

    fig = curves_figure(_rows(), DPOObjective.plot_keys)
    titles = _titles(fig)
    assert "rewards/accuracies/wrong_symbol" in titles and "loss" in titles and len(titles) == 7
    for ax in fig.axes:
        assert ax.get_xlabel() == "optimiser step"
        if "accuracies" in ax.get_title():
            assert ax.get_ylim() == (0.0, 1.0)
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks)
    assert fig.axes[titles.index("loss")].get_ylim()[0] == 0.0  # the loss reaches 0: no margin below it
    assert fig.axes[titles.index("rewards/rejected")].get_ylim()[0] < 0  # rewards can be negative
    plt.close(fig)
    # not logged (e.g. SFT-style pairs without groups): no panel for it
    fig = curves_figure(_rows(wrong_symbol=False), DPOObjective.plot_keys)
    assert "rewards/accuracies/wrong_symbol" not in _titles(fig)
    plt.close(fig)
    assert curves_figure([], DPOObjective.plot_keys) is None


def test_eval_metrics_share_the_training_panel():
    import matplotlib.pyplot as plt

    fig = curves_figure(_rows(eval_every=5), DPOObjective.plot_keys)
    titles = _titles(fig)
    assert not any(t.startswith("eval") for t in titles)
    for name in ("loss", "rewards/accuracies"):
        ax = fig.axes[titles.index(name)]
        assert len(ax.get_lines()) == 2
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "eval"]
    assert fig.axes[titles.index("rewards/margins")].get_legend() is None
    plt.close(fig)


def _cells(metric: str, shots=(0, 4, 8, 32), trials: int = 3) -> list[dict]:
    return [{"task": "vqav2", "shots": s, "demo_images": demo, "query_image": "real", "metric": metric, "n": 10,
             "trials": [{"seed": i, "score": 40.0 + s} for i in range(trials)], "mean": 40.0 + s, "std": 1.5}
            for demo in ("real", "blank") for s in shots]


@pytest.mark.parametrize(("metric", "label", "top"), [("vqa_accuracy", "VQA accuracy (%)", 100.0),
                                                     ("cider", "CIDEr", None)])
def test_shot_curves_have_shot_ticks_and_a_zero_floor(metric, label, top):
    import matplotlib.pyplot as plt

    fig = shot_curve_figure("vqav2", _cells(metric), "a/very/long/path/to/some/fine-tuned/model/directory/final")
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [0, 4, 8, 32]
    assert ax.get_ylim()[0] == 0.0 and ax.get_ylabel() == label
    if top is not None:
        assert ax.get_ylim()[1] == top
    assert len(ax.get_legend().get_texts()) == 2
    assert all(len(line) <= 60 for line in ax.get_title().splitlines())
    plt.close(fig)


def test_shot_curve_pngs_written(tmp_path):
    results = {"results": _cells("vqa_accuracy", trials=1), "config": {"model": "tiny"}}
    paths = plot_shots(tmp_path, results)
    assert paths == [tmp_path / "shots_vqav2.png"] and paths[0].is_file()


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_progress_prints_a_bounded_number_of_lines():
    buf, clock = io.StringIO(), _Clock()
    with PlainProgress(1000, file=buf, clock=clock) as bar:
        task = bar.add_task("train", total=1000, completed=0, loss="-", acc="-")
        for done in range(1, 1001):
            clock.t += 0.01  # 10 s in all: under the 30 s cap, so only the 5% strides print
            bar.update(task, completed=done, loss="0.6931", acc="0.50")
    lines = buf.getvalue().splitlines()
    assert 10 <= len(lines) <= 21
    assert lines[0].startswith("step 50/1000  loss 0.6931  acc 0.50  eta ")
    assert lines[-1].startswith("step 1000/1000")


def test_plain_progress_prints_every_interval_on_slow_runs_and_hides_placeholders():
    buf, clock = io.StringIO(), _Clock()
    bar = PlainProgress(100, file=buf, clock=clock, every_s=30.0)
    task = bar.add_task("train", total=100, completed=10, loss="-", acc="-")
    clock.t = 31.0
    bar.update(task, completed=11, loss="0.1234", acc="nan")  # SFT: no reward accuracy
    assert buf.getvalue() == "step 11/100  loss 0.1234  eta 45m59s\n"


def test_progress_bar_is_plain_off_a_terminal_and_silent_when_disabled():
    buf = io.StringIO()
    assert isinstance(progress_bar(10, enabled=True, file=buf), PlainProgress)
    with progress_bar(10, enabled=False, file=buf) as bar:
        task = bar.add_task("train", total=10, completed=0, loss="-", acc="-")
        bar.update(task, completed=10, loss="0.5", acc="0.5")
    assert buf.getvalue() == ""


def test_model_presets_lists_every_preset_within_80_columns():
    from symdpo.models.cli import app

    res = CliRunner().invoke(app, ["presets"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    names = {line.split()[0] for line in res.output.splitlines() if line.strip()}
    assert {p.name for p in presets()} <= names
    assert max(len(line) for line in res.output.splitlines()) <= 80
