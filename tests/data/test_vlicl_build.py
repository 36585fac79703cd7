"""``symdpo data build --source vlicl``: SymDPO pairs from VL-ICL's support split, never from its query split.

The data is VL-ICL's published layout (tests/eval/vlicl_fixtures.py, /work/shared/VL-ICL.md section 1). Records
are compared against the fixture's own support.json and query.json: every image and answer of a record must be
a support record's (the operator tasks: that operator's entry of the support answer list [A+B, A-B, AxB]), and
no query id or query image may appear. Counts and k ranges are compared against the options given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vlicl_fixtures import write_all, write_training_support

from symdpo.data.build import build
from symdpo.data.cli import app
from symdpo.data.errors import DataError
from symdpo.data.options import BuildOptions, SymbolOptions
from symdpo.data.recordio import read_records

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
OPERATOR_INDEX = {"+": 0, "-": 1, "x": 2}  # VL-ICL's order of the support answer list (VL-ICL.md section 2)


@pytest.fixture(scope="module")
def vlicl(tmp_path_factory) -> Path:
    """Return a VL-ICL folder of all six tasks, with clevr and open_mi support pools big enough for contexts."""
    return write_training_support(write_all(tmp_path_factory.mktemp("vlicl")))


def _split(root: Path, folder: str, split: str) -> list[dict]:
    return json.loads((root / folder / f"{split}.json").read_text())


def _build(root: Path, task: str, out: Path, **kw) -> dict:
    symbols = kw.pop("symbols", SymbolOptions(k_min=2, k_max=3))
    return build(BuildOptions(source="vlicl", vlicl_data=root, vlicl_task=task, out=out, symbols=symbols, **kw))


def _one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("task", ["operator_induction", "clevr", "open_mi"])
def test_pairs_come_from_the_support_split_only(vlicl, tmp_path, task):
    out = tmp_path / "pairs.jsonl"
    _build(vlicl, task, out, symbols=SymbolOptions(k_min=2, k_max=3, pairs_per_query="all", icl_fraction=0.3))
    records = list(read_records(out))  # every record validated (symbols, chosen, rejected invariants)
    assert records
    support = {r["image"][0]: r for r in _split(vlicl, task, "support")}
    queries = _split(vlicl, task, "query")
    query_ids = {q["id"] for q in queries}
    query_images = {p for q in queries for p in q["image"]} | {
        p for q in queries for cls in q.get("support", {}).values() for p in cls["images"]}  # open_mi's embedded
    for rec in records:
        assert rec.source == {"operator_induction": "vlicl-operator", "clevr": "vlicl-clevr",
                              "open_mi": "vlicl-open-mi"}[task]
        assert not any(qid in rec.id for qid in query_ids)
        assert set(rec.images) <= set(support) and not set(rec.images) & query_images
        op = rec.id.split(":")[1].rsplit("/", 1)[1] if task == "operator_induction" else None
        for demo in [*rec.context, rec.query]:
            stored = support[rec.images[demo.image]]
            assert demo.question == stored["question"]
            truth = demo.original_answer if demo is not rec.query else demo.answer
            # operator tasks: one operator per context, the one of the query's id (as VL-ICL's demonstrations)
            assert truth == str(stored["answer"][OPERATOR_INDEX[op]] if op else stored["answer"])


def test_counts_k_range_and_manifest_follow_the_options(vlicl, tmp_path):
    out = tmp_path / "clevr.jsonl"
    manifest = _build(vlicl, "vlicl-clevr", out, seed=3, max_records=10,
                      symbols=SymbolOptions(k_min=2, k_max=4, icl_fraction=0.0, pairs_per_query="all"))
    records = list(read_records(out))
    assert len(records) == manifest["counts"]["records"] == 10
    assert all(2 <= len(r.context) <= 4 for r in records)
    assert {r.rejected_type for r in records} == {"text", "wrong_symbol"}  # "all": one pair per type
    assert {len(r.context) for r in records} != {2}  # k is drawn, not fixed at k_min
    src = manifest["source"]
    assert (src["name"], src["split"], src["vlicl_task"], src["eval_task"]) == ("vlicl", "support", "clevr",
                                                                                 "vlicl-clevr")
    assert [Path(f["path"]).relative_to(vlicl).as_posix() for f in src["files"]] == ["clevr/support.json"]
    assert src["examples"] == len(_split(vlicl, "clevr", "support")) and src["image_root"] == str(vlicl)
    assert manifest["options"]["vlicl_task"] == "clevr"
    # same options and seed: the same bytes
    again = tmp_path / "again.jsonl"
    _build(vlicl, "clevr", again, seed=3, max_records=10,
           symbols=SymbolOptions(k_min=2, k_max=4, icl_fraction=0.0, pairs_per_query="all"))
    assert again.read_bytes() == out.read_bytes()


def test_operator_streams_take_turns_under_max_records(vlicl, tmp_path):
    # the fixture's 8 support records (a, b): A+B repeats (10 three times) and A-B repeats (-1, 6 twice), AxB
    # never (0 6 8 25 7 18 16 9), so + and - queries have contexts and x queries none
    out = tmp_path / "op.jsonl"
    manifest = _build(vlicl, "operator_induction", out, max_records=2, symbols=SymbolOptions(k_min=2, k_max=2))
    records = list(read_records(out))
    assert len(records) == 2 and all(len(r.context) == 2 for r in records)
    assert manifest["source"]["examples"] == 24  # one example per support record and operator
    # one operator after another would give two "+" records: the operators' streams take turns
    assert sorted(r.id.split(":")[1].rsplit("/", 1)[1] for r in records) == ["+", "-"]


def test_sft_mode_builds_from_support(vlicl, tmp_path):
    out = tmp_path / "sft.jsonl"
    _build(vlicl, "clevr", out, mode="sft", sft_symbol_fraction=0.5)
    records = list(read_records(out))
    support_images = {r["image"][0] for r in _split(vlicl, "clevr", "support")}
    assert len(records) == 24 and {r.kind for r in records} == {"vqa", "symbol"}
    assert all(set(r.images) <= support_images for r in records)


def test_cli_build_then_two_dpo_steps_on_the_tiny_preset(vlicl, tmp_path):
    from symdpo.config import load_config
    from symdpo.train.config import TrainConfig
    from symdpo.train.dpo import train_dpo
    from symdpo.train.tracking import read_metrics

    out = tmp_path / "pairs.jsonl"
    r = runner.invoke(app, ["build", "--source", "vlicl", "--vlicl-data", str(vlicl), "--vlicl-task", "open_mi",
                            "--out", str(out), "--k-max", "3", "--max-records", "8"])
    assert r.exit_code == 0, r.output
    assert "wrote 8 records" in r.output
    run = tmp_path / "run"
    train_dpo(load_config(ROOT / "configs/tiny_dpo.yaml", [
        f"data.path={out}", f"output_dir={run}", "data.micro_batch_size=2", "data.global_batch_size=4",
        "optim.max_steps=2", "logging.progress=false", "logging.tensorboard=false", "logging.plot=false",
        "checkpoint.every_steps=100"], TrainConfig))
    metrics = read_metrics(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2] and all(m["loss"] > 0 for m in metrics)


def test_bad_input_is_one_line(vlicl, tmp_path):
    def build_cli(*args: str):
        return runner.invoke(app, ["build", "--source", "vlicl", "--out", str(tmp_path / "x.jsonl"), *args])

    data = ["--vlicl-data", str(vlicl)]
    r = build_cli(*data, "--vlicl-task", "clever")
    assert r.exit_code == 2 and "--vlicl-task: unknown VL-ICL task 'clever'" in _one_line_error(r)
    for task in ("matching_mi", "vlicl-operator-interleaved"):
        r = build_cli(*data, "--vlicl-task", task)
        assert r.exit_code == 2
        assert "cannot be built: its demonstrations hold 2 images each" in _one_line_error(r)
    r = build_cli("--vlicl-task", "clevr")
    assert r.exit_code == 2 and "source vlicl needs --vlicl-data" in _one_line_error(r)
    r = build_cli(*data, "--vlicl-task", "clevr", "--split", "query")
    assert r.exit_code == 2 and "support.json only (query.json is the evaluated set)" in _one_line_error(r)
    r = build_cli("--vlicl-data", str(tmp_path / "nowhere"), "--vlicl-task", "clevr")
    assert r.exit_code == 2 and "--vlicl-data: folder not found" in _one_line_error(r)
    # textocr's support texts do not repeat here (as mostly in VL-ICL): no context can show a query's answer
    r = build_cli(*data, "--vlicl-task", "textocr")
    assert r.exit_code == 1 and "no query of textocr/support.json has another support record" in _one_line_error(r)
    assert not (tmp_path / "x.jsonl").exists()
    empty = tmp_path / "empty"
    (empty / "clevr").mkdir(parents=True)
    (empty / "clevr" / "query.json").write_text("[]")
    with pytest.raises(DataError, match=r"clevr/support\.json: not found; --vlicl-data must be the VL-ICL folder"):
        _build(empty, "clevr", tmp_path / "y.jsonl")
    r = build_cli("--vlicl-data", str(empty), "--vlicl-task", "clevr")
    assert r.exit_code == 1 and "support.json: not found" in _one_line_error(r)
