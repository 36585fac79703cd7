"""`symdpo data build --demos rices`: each context's demonstrations are its question group's images most
similar to the query's, compared with a brute-force cosine ranking over tiny-clip embeddings computed here."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from symdpo.data.build import open_source
from symdpo.data.cli import app
from symdpo.data.options import BuildOptions
from symdpo.data.recordio import read_records
from symdpo.data.retrieval import embed_images, load_retrieval_encoder

runner = CliRunner()
ARGS = ["build", "--source", "easyvqa", "--max-records", "60", "--check-images", "none", "--demos", "rices",
        "--retrieval-encoder", "tiny-clip", "--k-min", "2", "--k-max", "4"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("rices")
    outs = []
    for name in ("a", "b"):
        result = runner.invoke(app, [*ARGS, "--out", str(root / f"{name}.jsonl"), "--feature-cache", str(root / "cache")])
        assert result.exit_code == 0, result.output
        outs.append(root / f"{name}.jsonl")
    return outs


def test_rices_contexts_equal_a_brute_force_cosine_ranking(built) -> None:
    opts = BuildOptions(source="easyvqa", out=built[0])
    examples, root = open_source(opts)
    examples = list(examples)
    images = sorted({e.image for e in examples})
    feats = dict(zip(images, embed_images(load_retrieval_encoder("tiny-clip"), root, images), strict=True))
    records = list(read_records(built[0]))
    checked = 0
    for rec in records:
        q = rec.query
        if any(d.question != q.question for d in rec.context):
            continue  # a same-type context (the question's group could not supply one)
        query_image = rec.images[q.image]
        # brute force: every example of the question, the query's image excluded, by cosine similarity
        group = [e for e in examples if e.question == q.question and e.image != query_image]
        sims = {e.image: float(feats[e.image] @ feats[query_image]) for e in group}
        by_sim = sorted(group, key=lambda e: -sims[e.image])
        first_same = next(e for e in by_sim if e.answer == q.answer)
        first_other = next(e for e in by_sim if e.answer != q.answer)
        rest = [e for e in by_sim if e.image not in (first_same.image, first_other.image)]
        want = {first_same.image, first_other.image} | {e.image for e in rest[:len(rec.context) - 2]}
        shown = [rec.images[d.image] for d in rec.context]
        assert set(shown) == want and query_image not in shown
        assert [sims[i] for i in shown] == sorted(sims[i] for i in shown)  # most similar last
        checked += 1
    assert checked >= 20


def test_rices_build_is_identical_across_runs_and_records_its_encoder(built) -> None:
    assert built[0].read_bytes() == built[1].read_bytes()
    manifest = json.loads(built[0].with_name("a.jsonl.manifest.json").read_text())
    assert manifest["options"]["demos"] == "rices" and manifest["options"]["retrieval_encoder"] == "tiny-clip"


def test_rices_with_a_missing_encoder_or_sft_is_one_line(tmp_path) -> None:
    r = runner.invoke(app, ["build", "--source", "easyvqa", "--demos", "rices", "--retrieval-encoder",
                            str(tmp_path / "nope"), "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "nope" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["build", "--source", "easyvqa", "--demos", "rices", "--mode", "sft",
                            "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "--demos rices selects the demonstrations of preference contexts" in r.output
    assert not (tmp_path / "x.jsonl").exists()
