"""SFT sequences from a VQA source: the kinds the demo's two-stage pretraining uses (copy, unrelated images)."""

from __future__ import annotations

from collections import Counter

from symdpo.data.build import build
from symdpo.data.options import BuildOptions
from symdpo.data.recordio import read_records
from symdpo.data.records import SFTRecord, render_openflamingo
from symdpo.data.sources import read_easyvqa
from symdpo.pseudowords import builtin_symbols


def _build(tmp_path, name: str, **opts) -> list[SFTRecord]:
    out = tmp_path / name
    opts.setdefault("question_regex", "^what")
    build(BuildOptions(source="easyvqa", mode="sft", out=out, max_records=600, check_images="none", **opts))
    return list(read_records(out))


def test_copy_sequences_repeat_a_demonstration_in_the_caption_template(tmp_path):
    records = _build(tmp_path, "c.jsonl", sft_copy_fraction=0.5, sft_symbol_fraction=1.0)
    kinds = Counter(r.kind for r in records)
    assert set(kinds) == {"copy", "symbol"} and 200 < kinds["copy"] < 400  # drawn with probability 0.5
    words = set(builtin_symbols(100_000))
    for r in (r for r in records if r.kind == "copy"):
        text = r.context[0].answer
        assert r.target == r.query.answer == text and 6 <= len(text.split()) <= 14
        assert set(text.split()) <= words  # the symbol vocabulary's pseudo-words
        prompt, images, target, _ = render_openflamingo(r)
        assert prompt == f"<image>Output:{text}<|endofchunk|><image>Output:" and target == text + "<|endofchunk|>"
        assert len(set(images)) == 2


def test_unrelated_images_carry_nothing_about_the_answers(tmp_path):
    """Compared with easy-VQA's own labels: the shown query image has the query's colour only by chance."""
    colour_of = {ex.image: ex.answer for ex in read_easyvqa("train") if ex.question.startswith("what color")}

    def agreement(records: list[SFTRecord]) -> float:
        pairs = [(colour_of.get(r.images[r.query.image]), r.query.answer) for r in records if r.kind == "symbol"]
        pairs = [(a, b) for a, b in pairs if a is not None]
        assert len(pairs) > 50
        return sum(a == b for a, b in pairs) / len(pairs)

    opts = dict(sft_symbol_fraction=1.0, question_regex="^what color")
    assert agreement(_build(tmp_path, "m.jsonl", **opts)) == 1.0
    assert agreement(_build(tmp_path, "u.jsonl", sft_symbol_images="unrelated", **opts)) < 0.35  # 8 colours
