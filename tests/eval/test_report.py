"""Report files and `eval compare`: mean ± std, per answer type, results.tex, drops.png, the spread test.

Run directories are made by hand (config.json + prediction rows chosen per item, or results.json alone), so
every expected number is a hand count or numpy's over the chosen scores; no model runs here.
"""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from symdpo.data.sources import read_vqa
from symdpo.data.sources.types import VQAExample
from symdpo.eval.cli import app
from symdpo.eval.config import EvalConfig
from symdpo.eval.merge import by_answer_type, merge_run
from symdpo.eval.metrics.vqa_accuracy import vqa_accuracy
from symdpo.eval.plan import conditions
from symdpo.eval.report import write_reports
from symdpo.eval.report.cells import condition_of
from symdpo.eval.report.compare import compare
from symdpo.eval.report.figures import drops_figure
from symdpo.eval.report.stats import drops, significance, t_critical
from symdpo.eval.report.tables import latex, latex_escape, markdown
from symdpo.eval.runner import eval_records
from symdpo.eval.tasks import get_task, single_answer_metric, vqa_metric

# --- hand-made runs -----------------------------------------------------------------------------------------

CONFIG = EvalConfig(model="hand_made", tasks=["easyvqa"], shots=[0, 2], trials=3, num_samples=40,
                    query_set_size=16, demo_images=["real", "blank"])


def _correct(cond, i: int) -> bool:
    """Whether item ``i`` is answered right under ``cond``: a pattern that differs by seed, shots and images."""
    period = 2 + (cond.seed + cond.shots + (cond.demo_images == "blank")) % 4
    return i % period != 0


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """A 3-trial easy-VQA run whose predictions are the right answer or "wrong" by ``_correct``, merged."""
    run = tmp_path_factory.mktemp("hand") / "run"
    (run / "predictions").mkdir(parents=True)
    (run / "config.json").write_text(CONFIG.model_dump_json())
    records = eval_records(CONFIG, get_task("easyvqa")).records
    lines = []
    for cond in conditions(CONFIG, "easyvqa"):
        for i, r in enumerate(records):
            prediction = r.answer if _correct(cond, i) else "wrong"
            lines.append(json.dumps({**cond.row(), "id": r.id, "prediction": prediction}))
    (run / "predictions" / "part-000.jsonl").write_text("\n".join(lines) + "\n")
    return run, records, merge_run(run)


def _cell_of(results, cond):
    [cell] = [c for c in results["results"] if c["shots"] == cond.shots and c["demo_images"] == cond.demo_images]
    return cell


def _easyvqa_type(answer: str) -> str:
    """The answer type by easy-VQA's answers.txt: yes, no, three shapes, the rest colours."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "shape" if answer in ("circle", "rectangle", "triangle") else "color"


def test_markdown_mean_std_are_numpys_over_hand_counted_trials(merged) -> None:
    """Compared against: a hand count of right answers per trial, then numpy's mean and (population) std."""
    run, records, results = merged
    md = (run / "results.md").read_text()
    n = len(records)
    for cond in conditions(CONFIG, "easyvqa"):
        if cond.trial:
            continue
        cell = _cell_of(results, cond)
        same = [c for c in conditions(CONFIG, "easyvqa") if (c.shots, c.demo_images) == (cond.shots, cond.demo_images)]
        hand = [100.0 * sum(_correct(c, i) for i in range(n)) / n for c in same]
        assert [t["score"] for t in cell["trials"]] == pytest.approx(hand)
        assert (cell["mean"], cell["std"]) == (pytest.approx(np.mean(hand)), pytest.approx(np.std(hand)))
        assert len(set(hand)) > 1  # the trials do differ: the std is not trivially 0
        line = f"| easyvqa | {cond.shots} | {cond.demo_images} | real | real | vqa_accuracy | "
        row = next(ln for ln in md.splitlines() if ln.startswith(line))
        assert f"| {np.mean(hand):.2f} ± {np.std(hand):.2f} | 3 | {n} |" in row
    assert "± of a drop: std of the per-seed drops" in md and "| easyvqa | 2 | demo images blank |" in md


def test_by_type_is_a_hand_count_per_answer_type_and_the_aggregate_is_unchanged(merged) -> None:
    """Compared against: per easy-VQA answer type (its answers.txt vocabulary), a hand count of right answers per
    trial with numpy's mean/std over the trials; the aggregate against the pre-change formula (sum of the
    per-item VQA accuracies / n)."""
    run, records, results = merged
    types = [_easyvqa_type(r.answer) for r in records]
    assert [r.answer_type for r in records] == types and len(set(types)) == 3
    saved = json.loads((run / "results.json").read_text())["results"]
    for cond in conditions(CONFIG, "easyvqa"):
        cell = _cell_of(results, cond)
        assert cell in saved
        trial = next(t for t in cell["trials"] if t["seed"] == cond.seed)
        old = 100.0 * sum(vqa_accuracy(r.answer if _correct(cond, i) else "wrong", [r.answer] * 10)
                          for i, r in enumerate(records)) / len(records)
        assert trial["score"] == old  # exactly: the same sum in the same order
        for kind in set(types):
            idx = [i for i, t in enumerate(types) if t == kind]
            hand = 100.0 * sum(_correct(cond, i) for i in idx) / len(idx)
            assert trial["by_type"][kind] == {"score": pytest.approx(hand), "n": len(idx)}
    cell = results["results"][-1]
    for kind, stats in cell["by_type"].items():
        per_trial = [t["by_type"][kind]["score"] for t in cell["trials"]]
        assert stats == {"mean": pytest.approx(np.mean(per_trial)), "std": pytest.approx(np.std(per_trial)),
                         "n": types.count(kind)}
    md = (run / "results.md").read_text()
    assert "## By answer type" in md and f"yes/no (n={types.count('yes/no')})" in md


def _vqav2_records():
    """Six VQAv2-like records with ten annotator answers each, two per official answer_type."""
    answers = [("yes",) * 10, ("no",) * 7 + ("yes",) * 3, ("2",) * 2 + ("3",) * 8, ("2",) * 10,
               ("red",) * 1 + ("blue",) * 9, ("cat",) * 10]
    kinds = ["yes/no", "yes/no", "number", "number", "other", "other"]
    return [VQAExample(str(i), f"{i}.jpg", "q?", a, a[0], "what", k)
            for i, (a, k) in enumerate(zip(answers, kinds, strict=True))]


def test_vqa_metric_per_item_scores_and_unchanged_aggregate() -> None:
    """Compared against: the leave-one-out VQA accuracy worked out by hand per item (below), the official
    answer_type of each record for the breakdown, and the pre-change aggregate formula (exact equality)."""
    records = _vqav2_records()
    preds = {"0": "yes", "1": "yes", "2": "two", "3": "2", "4": "red", "5": "dog"}
    scored = vqa_metric(preds, records)
    # item 1: 3 "yes" answers: each of the 7 others sees 3 matches (1.0), each of the 3 sees 2 (2/3) -> 0.9
    # item 2: "two" -> "2", 2 matches: 8 x 2/3 + 2 x 1/3 over 10 = 0.6; item 4: 1 match: 9 x 1/3 / 10 = 0.3
    hand = [1.0, 0.9, 0.6, 1.0, 0.3, 0.0]
    assert scored["per_item"] == pytest.approx(hand)
    old = 100.0 * sum(vqa_accuracy(preds[r.id], r.answers) for r in records) / len(records)
    assert scored["score"] == old and scored["score"] == pytest.approx(100.0 * sum(hand) / 6)
    single = single_answer_metric(preds, records)
    assert single["score"] == 100.0 * sum(vqa_accuracy(preds[r.id], [r.answer] * 10) for r in records) / 6
    assert by_answer_type(scored["per_item"], records) == {"by_type": {
        "number": {"score": pytest.approx(80.0), "n": 2}, "other": {"score": pytest.approx(15.0), "n": 2},
        "yes/no": {"score": pytest.approx(95.0), "n": 2}}}
    assert list(by_answer_type(scored["per_item"], records)["by_type"]) == ["yes/no", "number", "other"]  # VQAv2's
    no_types = [VQAExample(r.id, r.image, r.question, r.answers, r.answer, r.question_type) for r in records]
    assert by_answer_type(scored["per_item"], no_types) == {}  # TextVQA: no answer types, no breakdown


def test_vqav2_reader_keeps_the_annotations_answer_type(tmp_path) -> None:
    """Compared against: the official VQAv2 annotation field answer_type written in the file."""
    qs = {"data_subtype": "val2014", "questions": [{"question_id": i, "image_id": i, "question": "How many?"}
                                                   for i in range(3)]}
    kinds = ["yes/no", "number", "other"]
    anns = {"annotations": [{"question_id": i, "image_id": i, "answers": [{"answer": "2"}] * 10,
                             "answer_type": kinds[i], "question_type": "how many"} for i in range(3)]}
    (tmp_path / "q.json").write_text(json.dumps(qs))
    (tmp_path / "a.json").write_text(json.dumps(anns))
    assert [r.answer_type for r in read_vqa(tmp_path / "q.json", tmp_path / "a.json")] == kinds
    del anns["annotations"][0]["answer_type"]
    (tmp_path / "a.json").write_text(json.dumps(anns))
    assert [r.answer_type for r in read_vqa(tmp_path / "q.json", tmp_path / "a.json")] == [None, "number", "other"]


# --- crafted results -------------------------------------------------------------------------------------


def _cell(task, shots, scores, *, seeds=None, metric="vqa_accuracy", n=100, **cond):
    seeds = seeds or [42 + i for i in range(len(scores))]
    return {"task": task, "shots": shots, "demo_images": "real", "query_image": "real", **cond, "metric": metric,
            "n": n, "trials": [{"seed": s, "score": v} for s, v in zip(seeds, scores, strict=True)],
            "mean": float(np.mean(scores)), "std": float(np.std(scores))}


def _results(cells, model="of_3b 100% & more"):
    return {"config": {"model": model, "demo_selection": "random", "query_set_size": 2048, "trials": 3, "seed": 42,
                       "num_samples": None},
            "git_revision": None, "cider_tokenizer": None, "results": cells, "drops": []}


CELLS = [_cell("ok_vqa", 0, [40.0, 41.0, 43.0]), _cell("ok_vqa", 4, [45.0, 47.0, 46.0]),
         _cell("ok_vqa", 4, [41.0, 42.5, 40.0], demo_images="blank"),
         _cell("ok_vqa", 4, [44.0, 46.0, 45.5], demo_labels="random_words"),
         _cell("ok_vqa", 8, [48.0, 49.0, 47.0]), _cell("ok_vqa", 8, [42.0, 40.0, 41.0], demo_images="blank"),
         _cell("coco", 4, [80.0, 82.0, 84.0], metric="cider"),
         _cell("coco", 4, [70.0, 75.0, 71.0], metric="cider", demo_images="blank")]


def _strip_math(line: str) -> str:
    return re.sub(r"(?<!\\)\$.*?(?<!\\)\$", "", line)


def test_latex_tables_are_booktabs_escaped_and_structurally_sound() -> None:
    """Compared against: the crafted cells (one row per condition, one column per shot count) and the LaTeX
    rules checked by hand: balanced braces and environments, same & count per row, escaped _ % &."""
    tex = latex(_results(CELLS))
    tables = tex.split(r"\begin{table}")[1:]
    assert len(tables) == 2 and tex.count(r"\end{table}") == 2
    ok = tables[0]
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert ok.count(rule) == 1
    body = ok.split("\\midrule\n")[1].split("\\bottomrule")[0].strip().splitlines()
    assert [ln.split(" & ")[0] for ln in body] == ["real", "demo images blank", "demo labels random\\_words"]
    assert body[0] == r"real & $41.33 \pm 1.25$ & $46.00 \pm 0.82$ & $48.00 \pm 0.82$ \\"
    assert body[1].startswith("demo images blank & -- & ")  # no 0-shot blank cell
    assert "ok\\_vqa" in ok and "of\\_3b 100\\% \\& more" in ok and "VQA accuracy (\\%)" in ok
    for table in tables:
        [spec] = re.findall(r"\\begin\{tabular\}\{([lrc]+)\}", table)
        rows = [ln for ln in table.splitlines() if ln.endswith(r"\\")]
        assert rows and all(ln.count(" & ") == len(spec) - 1 for ln in rows)
        assert table.count(r"\begin{tabular}") == table.count(r"\end{tabular}") == 1
    unescaped = re.sub(r"\\[{}]", "", tex)
    depth = 0
    for ch in unescaped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    for line in tex.splitlines():
        if line.startswith("%"):
            continue  # a comment line
        text = _strip_math(line).replace(" & ", " ")
        assert not re.search(r"(?<!\\)[_%&$#]", text), line
        assert len(re.findall(r"(?<!\\)\$", line)) % 2 == 0, line
    assert latex_escape("a_b%c&d\\e") == r"a\_b\%c\&d\textbackslash{}e"


def test_drops_match_numpy_and_the_png_is_a_sane_figure(tmp_path) -> None:
    """Compared against: real - altered by hand, numpy's std of the per-seed paired drops (same seeds), or
    sqrt(std_real^2 + std_altered^2) when the seeds differ; the figure's own axes and the PNG's size."""
    import matplotlib.pyplot as plt

    rows = drops(CELLS)
    got = {(r["task"], r["shots"], r["condition"], r["value"]): r for r in rows}
    assert set(got) == {("ok_vqa", 4, "demo_images", "blank"), ("ok_vqa", 4, "demo_labels", "random_words"),
                        ("ok_vqa", 8, "demo_images", "blank"), ("coco", 4, "demo_images", "blank")}
    r = got["ok_vqa", 4, "demo_images", "blank"]
    per_seed = np.array([45.0, 47.0, 46.0]) - np.array([41.0, 42.5, 40.0])
    assert r["drop"] == pytest.approx(46.0 - 41.166666) and r["paired"]
    assert r["drop_std"] == pytest.approx(np.std(per_seed))
    unaligned = [_cell("t", 4, [50.0, 52.0]), _cell("t", 4, [40.0, 45.0], seeds=[7, 8], demo_images="blank")]
    [u] = drops(unaligned)
    assert not u["paired"] and u["drop_std"] == pytest.approx(math.hypot(np.std([50, 52]), np.std([40, 45])))

    write_reports(tmp_path, _results(CELLS))
    png = tmp_path / "drops.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    width, height = Image.open(io.BytesIO(png.read_bytes())).size
    assert 700 <= width <= 2000 and 300 <= height <= 1200
    assert (tmp_path / "results.tex").read_text() == latex(_results(CELLS))

    fig = drops_figure(rows, "m")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["ok_vqa", "coco"]
    assert axes[0].get_ylabel() == "drop in VQA accuracy (percentage points)"
    assert axes[1].get_ylabel() == "drop in CIDEr (points)"
    for ax in axes:
        assert ax.get_xlabel() == "shots (in-context demonstrations)"
        assert any(list(line.get_ydata()) == [0.0, 0.0] for line in ax.lines)  # the zero line
        assert all(c.errorbar is not None for c in ax.containers if hasattr(c, "patches"))  # 3 trials: bars
    heights = sorted(p.get_height() for p in axes[0].patches)
    assert heights == pytest.approx(sorted(x["drop"] for x in rows if x["task"] == "ok_vqa"))
    plt.close(fig)
    one = [_cell("t", 4, [50.0]), _cell("t", 4, [40.0], demo_images="blank")]
    fig = drops_figure(drops(one), "m")
    assert all(c.errorbar is None for c in fig.axes[0].containers if hasattr(c, "patches"))  # one trial: none
    plt.close(fig)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_reports(empty, _results(CELLS[:1]))
    assert (empty / "results.tex").exists() and not (empty / "drops.png").exists()  # nothing altered: no drops


def test_t_critical_values() -> None:
    """Compared against: the published two-sided 5% table of Student's t (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2),
    three decimals; a fractional (Welch) df lies between its neighbours."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 5: 2.571, 10: 2.228, 20: 2.086, 30: 2.042}
    assert [t_critical(df) for df in table] == pytest.approx(list(table.values()), abs=6e-4)
    assert t_critical(3) > t_critical(3.5) > t_critical(4)


def _run(tmp_path, name, cells):
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps(_results(cells)))
    return tmp_path / name


def test_compare_flags_a_difference_beyond_the_spread_and_not_one_within(tmp_path) -> None:
    """Compared against: the paired t statistic by hand (per-seed differences d: mean / (std_ddof1 / sqrt 3))
    against t(0.975, 2) = 4.303, and Welch's t by hand against the t table."""
    a = _run(tmp_path, "a", [_cell("vqa", 4, [50.0, 51.0, 52.0]), _cell("vqa", 8, [50.0, 51.0, 52.0]),
                             _cell("vqa", 16, [50.0, 51.0, 52.0]), _cell("vqa", 0, [30.0])])
    # 4 shots: d = [5.0, 4.5, 5.5] (t = 17.3: beyond); 8 shots: d = [0.5, -1.0, 1.5] (t = 0.46: within)
    b = _run(tmp_path, "b", [_cell("vqa", 4, [55.0, 55.5, 57.5]), _cell("vqa", 8, [50.5, 50.0, 53.5]),
                             _cell("vqa", 16, [51.0, 52.0, 53.0], demo_images="blank"), _cell("vqa", 0, [35.0])])
    console = Console(width=100, record=True)
    rows = compare(a, b, console=console, latex_path=tmp_path / "cmp.tex")
    by = {(r["key"][1], r["key"][2]): r for r in rows}
    d = np.array([5.0, 4.5, 5.5])
    assert by[4, ()]["test"] == "paired" and by[4, ()]["differs"]
    assert by[4, ()]["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(3)))
    d = np.array([0.5, -1.0, 1.5])
    assert by[8, ()]["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(3))) and not by[8, ()]["differs"]
    assert by[0, ()]["test"] is None and by[0, ()]["differs"] is None  # one trial: no spread to judge by
    assert by[16, ()]["delta"] is None and by[16, (("demo_images", "blank"),)]["delta"] is None
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    lines = text.splitlines()
    assert "+5.00" in next(ln for ln in lines if "│     4 │" in ln) and "yes (paired)" in text
    assert "no (paired)" in next(ln for ln in lines if "│     8 │" in ln)
    assert "n/a (1 trial)" in next(ln for ln in lines if "│     0 │" in ln)
    assert "paired over the per-seed differences" in text and "Welch" in text
    tex = (tmp_path / "cmp.tex").read_text()
    assert r"\toprule" in tex and r"$+5.00^{*}$" in tex and r"$+0.33$" in tex

    # different seeds: Welch's test; 50,51,52 vs 60,61,62: t = 10 / sqrt(1/3 + 1/3) = 12.2 (df 4 -> 2.776)
    c = _run(tmp_path, "c", [_cell("vqa", 4, [60.0, 61.0, 62.0], seeds=[7, 8, 9]),
                             _cell("vqa", 8, [49.0, 53.0, 50.0], seeds=[7, 8, 9])])
    rows = compare(a, c, console=Console(width=100, file=io.StringIO()))
    by = {(r["key"][1], r["key"][2]): r for r in rows}
    assert by[4, ()]["test"] == "Welch" and by[4, ()]["t"] == pytest.approx(10 / math.sqrt(2 / 3))
    assert by[4, ()]["df"] == pytest.approx(4.0) and by[4, ()]["differs"]
    va, vb = np.var([50, 51, 52], ddof=1) / 3, np.var([49, 53, 50], ddof=1) / 3
    assert by[8, ()]["t"] == pytest.approx((np.mean([49, 53, 50]) - 51) / math.sqrt(va + vb))
    assert not by[8, ()]["differs"]


def test_compare_cli_writes_latex_and_matches_cells_whatever_fields_a_run_has(tmp_path) -> None:
    """Compared against: the crafted cells; a run without a demo_labels field matches one with demo_labels real."""
    a = _run(tmp_path, "a", [_cell("vqa", 4, [50.0, 51.0, 52.0])])
    b = _run(tmp_path, "b", [_cell("vqa", 4, [50.0, 51.5, 52.0], demo_labels="real")])
    assert condition_of(json.loads((b / "results.json").read_text())["results"][0]) == ()
    out = CliRunner().invoke(app, ["compare", str(a), str(b), "--latex", str(tmp_path / "c.tex")],
                             env={"COLUMNS": "100"})
    assert out.exit_code == 0, out.output
    assert max(len(line) for line in out.stdout.splitlines()) <= 100
    assert "+0.17" in out.stdout and "no (paired)" in out.stdout
    assert "vqa & 4 & real & $51.00 \\pm 0.82$" in (tmp_path / "c.tex").read_text()


def test_significance_without_spread() -> None:
    """Compared against: the definition: identical per-seed differences have no spread, so any difference is
    beyond it and none is not."""
    a = _cell("t", 4, [50.0, 51.0])
    assert significance(a, _cell("t", 4, [52.0, 53.0]))["differs"]
    assert not significance(a, _cell("t", 4, [50.0, 51.0]))["differs"]


def test_markdown_without_trials_spread_shows_the_mean_alone() -> None:
    """Compared against: the crafted single-trial cell (no std to show)."""
    md = markdown(_results([_cell("vqa", 4, [50.0])]))
    assert "| vqa | 4 | real | real | vqa_accuracy | 50.00 | 1 | 100 |" in md and "±" not in md.split("\n\n", 2)[2]
