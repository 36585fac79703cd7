"""The SymDPO builder: the recipe's invariants on every record, determinism, and the options."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from symdpo.data.build import build
from symdpo.data.errors import DataError
from symdpo.data.manifest import manifest_path
from symdpo.data.options import BuildOptions, SymbolOptions
from symdpo.data.pool import VQAPool
from symdpo.data.recordio import read_records
from symdpo.data.records import PreferenceRecord
from symdpo.data.sources import read_easyvqa
from symdpo.data.sources.types import VQAExample
from symdpo.data.symbols import SymbolBuilder, shortcut_answer
from symdpo.data.vocab import SymbolVocabulary, read_symbol_file, words_of
from symdpo.pseudowords import builtin_symbols


def synthetic_examples(n: int = 1500, seed: int = 0) -> list[VQAExample]:
    """Return VQA examples with repeated and one-off questions (so both context levels occur)."""
    rng = random.Random(seed)
    kinds = {"what color is the": ["red", "blue", "green", "white"], "how many": ["1", "2", "3"],
             "is the": ["yes", "no"]}
    out = []
    for i in range(n):
        qtype = rng.choice(sorted(kinds))
        noun = rng.choice(["cat", "dog", "bus"]) if rng.random() < 0.8 else f"thing{i}"  # 20% unique questions
        answer = rng.choice(kinds[qtype])
        out.append(VQAExample(str(i), f"img/{i // 3}.jpg", f"{qtype} {noun}?", (answer,) * 9 + ("other",), answer,
                              qtype))
    return out


def build_records(examples, seed=0, **opts) -> tuple[list[PreferenceRecord], SymbolBuilder]:
    pool = VQAPool("synth", examples)
    vocab = SymbolVocabulary.for_source(pool.answers, pool.questions)
    builder = SymbolBuilder(pool, vocab, SymbolOptions(**opts), seed)
    return list(builder.records()), builder


@pytest.mark.parametrize("source", ["synthetic", "easyvqa"])
def test_every_symbol_record_keeps_the_recipe(source):
    examples = synthetic_examples() if source == "synthetic" else list(read_easyvqa("train"))[:4000]
    records, builder = build_records(examples, icl_fraction=0.25)
    answers = {a.lower() for ex in examples for a in ex.answers}
    forbidden = answers | words_of(answers) | words_of(ex.question for ex in examples)
    image_of = {ex.id: ex.image for ex in examples}
    assert len(records) > 0.9 * len(examples)
    for r in records:
        assert len(set(r.images)) == len(r.images)  # no image twice, the query's included
        assert 2 <= len(r.context) <= 8
        assert len({d.original_answer for d in r.context}) >= 2
        assert r.images[-1] == image_of[r.id.split(":")[1]]
        if r.kind == "symbol":
            holders = [d for d in r.context if d.answer == r.chosen]
            assert holders and all(d.original_answer == r.query.answer for d in holders)
            assert not {s.lower() for s in r.symbols.values()} & forbidden
            assert r.rejected == (r.query.answer if r.rejected_type == "text" else r.rejected)
        else:
            assert r.chosen == r.query.answer and r.rejected_type == "wrong_answer"
    kinds = Counter(r.kind for r in records)
    assert 0.15 < kinds["icl"] / len(records) < 0.35
    if source == "synthetic":
        assert builder.counts["context_same_question"] and builder.counts["context_same_type"]


def test_same_question_demonstrations_when_available():
    records, _ = build_records(synthetic_examples())
    same = [r for r in records if all(d.question == r.query.question for d in r.context)]
    assert len(same) > 0.6 * len(records)


def test_pairs_per_query_all_and_weights():
    records, _ = build_records(synthetic_examples(300), icl_fraction=0.0, pairs_per_query="all")
    by_query = Counter(r.id.rsplit(":", 1)[0] for r in records)
    assert set(by_query.values()) == {2}
    assert Counter(r.rejected_type for r in records) == {"text": len(by_query), "wrong_symbol": len(by_query)}
    only_text, _ = build_records(synthetic_examples(300), icl_fraction=0.0,
                                 rejected_weights={"text": 1.0, "wrong_symbol": 0.0})
    assert {r.rejected_type for r in only_text} == {"text"}
    all_icl, _ = build_records(synthetic_examples(300), icl_fraction=1.0)
    assert {r.kind for r in all_icl} == {"icl"} and all(not r.symbols for r in all_icl)


def test_shortcut_wrong_symbol():
    assert shortcut_answer([1, 2, 3], 1) == 3  # the last demonstration's answer
    assert shortcut_answer([2, 3, 2, 1], 1) == 2  # last is the query's: the most frequent other
    assert shortcut_answer([3, 2, 1], 1) == 2  # tie: the latest of the most frequent
    assert shortcut_answer([2, 1], 1, random.Random(0)) == 2
    records, _ = build_records(synthetic_examples(300), icl_fraction=0.0,
                               rejected_weights={"wrong_symbol": 1.0})
    for r in records:
        last = r.context[-1]
        if last.original_answer != r.query.answer:
            assert r.rejected == last.answer


def test_vocabulary():
    words = builtin_symbols()
    assert len(words) == len(set(words)) == 2048 and words == builtin_symbols()
    vocab = SymbolVocabulary.for_source(["yes", "fire hydrant"], ["is it blorp?"], user=["blorp", "hydrant", "Yes",
                                                                                          "zorbix", "hyd", "ydra"])
    assert {"blorp", "hydrant", "Yes"} <= set(vocab.excluded) and "zorbix" in vocab.symbols
    # the beginning of an answer word is excluded (a symbol "hyd" would teach cutting "hydrant" short); inside is not
    assert "hyd" in vocab.excluded and "ydra" in vocab.symbols
    assert vocab.describe()["size"] == len(vocab.symbols)


def test_symbol_file(tmp_path):
    (tmp_path / "s.txt").write_text("# my symbols\nzorbix\n\nquenthal  # comment\n")
    assert read_symbol_file(tmp_path / "s.txt") == ["zorbix", "quenthal"]
    (tmp_path / "bad.txt").write_text("ok\ntwo words\n")
    with pytest.raises(DataError, match=r"bad.txt:2: a symbol must be one word"):
        read_symbol_file(tmp_path / "bad.txt")


def test_too_few_symbols():
    pool = VQAPool("synth", synthetic_examples(50))
    vocab = SymbolVocabulary.for_source(pool.answers, pool.questions, user=["zorbix"], builtin=False)
    with pytest.raises(ValueError, match="only 1 usable symbols"):
        SymbolBuilder(pool, vocab, SymbolOptions(builtin_symbols=False, symbols_file="x"), 0)


def _easy(tmp_path, name: str, seed: int, **kw) -> tuple[bytes, bytes]:
    out = tmp_path / name
    build(BuildOptions(source="easyvqa", out=out, seed=seed, max_records=1500, check_images="none", **kw))
    return out.read_bytes(), manifest_path(out).read_bytes()


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, ext):
    a = _easy(tmp_path, f"a.{ext}", 1)
    b = _easy(tmp_path, f"b.{ext}", 1)
    c = _easy(tmp_path, f"c.{ext}", 2)
    assert a[0] == b[0] and a[1].replace(b"a." + ext.encode(), b"b." + ext.encode()) == b[1]
    assert a[0] != c[0]
    records = list(read_records(tmp_path / f"a.{ext}"))
    assert len(records) == 1500 and all(isinstance(r, PreferenceRecord) for r in records)


def test_parquet_and_jsonl_hold_the_same_records(tmp_path):
    _easy(tmp_path, "a.jsonl", 3)
    _easy(tmp_path, "a.parquet", 3)
    assert list(read_records(tmp_path / "a.jsonl")) == list(read_records(tmp_path / "a.parquet"))


def test_manifest_counts_match_the_records(tmp_path):
    import json

    out = tmp_path / "m.jsonl"
    manifest = build(BuildOptions(source="easyvqa", out=out, max_records=800, check_images="none",
                                  symbols={"icl_fraction": 0.3}))
    assert json.loads(manifest_path(out).read_text()) == manifest
    records = list(read_records(out))
    c = manifest["counts"]
    assert c["records"] == len(records) == 800
    assert c["by_rejected_type"] == dict(sorted(Counter(r.rejected_type for r in records).items()))
    assert c["by_kind"] == dict(sorted(Counter(r.kind for r in records).items()))
    assert manifest["vocabulary"]["size"] > 2000 and "same question" in manifest["recipe"]
    assert manifest["seed"] == 0 and manifest["source"]["examples"] == 38_575
