"""Readers: fixtures written in each official format are read back; easy-VQA is read for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symdpo.data.sources import read_coco, read_easyvqa, read_flickr30k, read_karpathy, read_textvqa, read_vqa
from symdpo.data.sources.jsonstream import JsonStream
from symdpo.data.sources.types import most_frequent


def test_vqav2_joins_by_question_id_not_position(vqa_files):
    examples = list(read_vqa(vqa_files["questions"], vqa_files["annotations"]))
    by_id = {a["question_id"]: a for a in vqa_files["a"]["annotations"]}
    questions = {q["question_id"]: q for q in vqa_files["q"]["questions"]}
    assert len(examples) == len(questions)
    # annotations are shuffled: each example must carry its own question's text and image
    for ex in examples:
        qid = int(ex.id)
        assert ex.question == questions[qid]["question"]
        assert ex.image == vqa_files["coco_name"](questions[qid]["image_id"])
        assert ex.answer == by_id[qid]["multiple_choice_answer"]
        assert list(ex.answers) == [a["answer"] for a in by_id[qid]["answers"]]
        assert ex.question_type == by_id[qid]["question_type"]


def test_okvqa_without_multiple_choice_answer_uses_most_frequent(tmp_path):
    qs = {"data_subtype": "val2014", "questions": [{"image_id": 5, "question": "what is this?", "question_id": 50}]}
    raw = ["race", "racing", "race", "racing", "racing"]  # OK-VQA style: 5 raw answers counted twice
    anns = {"annotations": [{"image_id": 5, "question_id": 50, "question_type": "eight",
                             "answers": [{"answer": a, "raw_answer": a, "answer_confidence": "yes", "answer_id": i}
                                         for i, a in enumerate(raw * 2)]}]}
    (tmp_path / "q.json").write_text(json.dumps(qs))
    (tmp_path / "a.json").write_text(json.dumps(anns))
    [ex] = read_vqa(tmp_path / "q.json", tmp_path / "a.json")
    assert ex.answer == "racing" and ex.image == "val2014/COCO_val2014_000000000005.jpg"
    assert len(ex.answers) == 10


def test_textvqa(tmp_path):
    data = {"dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [
        {"question": "what brand is this?", "image_id": "0054c91397f2fe05", "question_id": 7,
         "answers": ["nokia"] * 6 + ["nokia phone"] * 4, "image_classes": [], "set_name": "train"},
        {"question": "what time is it?", "image_id": "a1", "question_id": 8, "answers": ["10:10", "10:10", "10"]}]}
    (tmp_path / "t.json").write_text(json.dumps(data))
    a, b = read_textvqa(tmp_path / "t.json")
    assert (a.id, a.image, a.answer, a.question_type) == ("7", "train_images/0054c91397f2fe05.jpg", "nokia", "what brand")
    assert b.answer == "10:10" and len(a.answers) == 10


def test_karpathy_coco_and_flickr(tmp_path):
    coco = {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "imgid": 0, "cocoid": 391895,
         "split": "train", "sentences": [{"raw": "A man riding a bike.", "tokens": []}, {"raw": "A cyclist."}]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "imgid": 1, "cocoid": 42,
         "split": "test", "sentences": [{"raw": "A dog."}]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000043.jpg", "imgid": 2, "cocoid": 43,
         "split": "restval", "sentences": [{"raw": "A cat."}]}]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(coco))
    train = list(read_coco(tmp_path / "dataset_coco.json"))
    assert [e.id for e in train] == ["391895", "43"]
    assert train[0].image == "val2014/COCO_val2014_000000391895.jpg"
    assert train[0].captions == ("A man riding a bike.", "A cyclist.")
    assert [e.split for e in read_karpathy(tmp_path / "dataset_coco.json", splits=["test"])] == ["test"]
    flickr = {"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentences": [{"raw": "Two men."}]}]}
    (tmp_path / "f.json").write_text(json.dumps(flickr))
    [ex] = read_flickr30k(tmp_path / "f.json")
    assert (ex.id, ex.image, ex.captions) == ("0", "1000092795.jpg", ("Two men.",))


def test_easyvqa_is_read_for_real():
    examples = list(read_easyvqa("train"))
    assert len(examples) == 38_575  # the package's documented size
    first = examples[0]
    assert (first.question, first.answer, first.image) == ("what is the blue shape?", "rectangle", "images/0.png")
    assert len({e.answer for e in examples}) == 13
    assert len(list(read_easyvqa("test"))) == 9_673


def test_most_frequent_breaks_ties_by_first_occurrence():
    assert most_frequent(["b", "a", "a", "b"]) == "b"


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_stream_matches_json_load_at_any_chunk_size(tmp_path: Path, chunk: int):
    doc = {"info": {"x": [1, 2.5e3, None, True]}, "items": [{"a": "é\u00e9\\\"", "n": 123456789}, [], 3, "s"],
           "tail": -0.5}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc, indent=1))
    got: dict = {}
    for key, i, value in JsonStream(path, chunk_chars=chunk).entries({"items"}):
        if i is None:
            got[key] = value
        else:
            got.setdefault(key, []).append(value)
    assert got == doc
