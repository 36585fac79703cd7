"""Record schemas: a corrupted file names its file, line and field; OpenFlamingo rendering is exact."""

from __future__ import annotations

import json

import pytest

from symdpo.data.errors import DataError
from symdpo.data.recordio import read_records
from symdpo.data.records import PreferenceRecord, SFTRecord, render_openflamingo

GOOD = {"id": "vqav2:1:text", "source": "vqav2", "images": ["a.jpg", "b.jpg", "c.jpg"],
        "context": [{"image": 0, "question": "what color?", "answer": "dralo", "original_answer": "red"},
                    {"image": 1, "question": "what color?", "answer": "kesti", "original_answer": "blue"}],
        "query": {"image": 2, "question": "what color?", "answer": "red", "answers": ["red"] * 10},
        "kind": "symbol", "chosen": "dralo", "rejected": "red", "rejected_type": "text",
        "symbols": {"red": "dralo", "blue": "kesti"}}


def _write(tmp_path, records) -> object:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _broken(**changes) -> dict:
    rec = json.loads(json.dumps(GOOD))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = rec
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return rec


@pytest.mark.parametrize("changes, field, message", [
    ({"chosen": KeyError}, "chosen", None),  # neither "chosen" nor "target": not a known record type
    ({"context__1__answer": KeyError}, "context.1.answer", "Field required"),
    ({"query__image": "two"}, "query.image", "integer"),
    ({"chosen": "kesti"}, "chosen", "symbol of the query's answer"),
    ({"symbols": {"red": "dralo", "blue": "red"}, "context__1__answer": "red"}, "symbols", "collides"),
    ({"symbols": {"red": "dralo", "blue": "what"}, "context__1__answer": "what"}, "symbols", "collides"),
    ({"images": ["a.jpg", "a.jpg", "c.jpg"]}, "images", "twice"),
    ({"images": ["../a.jpg", "b.jpg", "c.jpg"]}, "images.0", "escapes"),
    ({"rejected_type": "wrong_symbol"}, "rejected", "symbol of another answer"),
    ({"kind": "icl"}, "symbols", "empty"),
    ({"extra": 1}, "extra", "Extra inputs"),
])
def test_corrupted_file_names_file_line_and_field(tmp_path, changes, field, message):
    path = _write(tmp_path, [GOOD, GOOD, _broken(**changes)])
    with pytest.raises(DataError) as info:
        list(read_records(path))
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 3, field), str(err)
    assert str(err).startswith(f"{path}:3: field '{field}'")
    if message:
        assert message in str(err)


def test_invalid_json_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD)[:-5] + "\n")
    with pytest.raises(DataError, match=r"p.jsonl:2: invalid JSON"):
        list(read_records(path))


def test_valid_record_and_render():
    rec = PreferenceRecord.model_validate(GOOD)
    text, images, chosen, rejected = render_openflamingo(rec)
    assert text == ("<image>Question:what color? Short answer:dralo<|endofchunk|>"
                    "<image>Question:what color? Short answer:kesti<|endofchunk|>"
                    "<image>Question:what color? Short answer:")
    assert images == ["a.jpg", "b.jpg", "c.jpg"]
    assert (chosen, rejected) == ("dralo<|endofchunk|>", "red<|endofchunk|>")
    assert render_openflamingo(rec, answer_end=False)[2:] == ("dralo", "red")


def test_render_captions():
    rec = SFTRecord(id="coco:1:caption", source="coco", kind="caption", images=["a.jpg", "b.jpg"],
                    context=[{"image": 0, "answer": "A dog.", "original_answer": "A dog."}],
                    query={"image": 1, "answer": "A cat.", "answers": ["A cat."]}, target="A cat.")
    text, images, target, rejected = render_openflamingo(rec)
    assert text == "<image>Output:A dog.<|endofchunk|><image>Output:"
    assert (target, rejected) == ("A cat.<|endofchunk|>", None)
