"""The bad-input set: each case is a clear error (naming file/item/field) or a counted skip, and no
output file -- partial or temp -- is ever left behind."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from symdpo.data.build import build
from symdpo.data.errors import BadImageError, DataError
from symdpo.data.manifest import manifest_path
from symdpo.data.options import BuildOptions
from symdpo.data.recordio import read_records


def _build(files: dict, **kw) -> dict:
    opts = {"source": "vqav2", "questions": files["questions"], "annotations": files["annotations"],
            "image_root": files["image_root"], "out": files["dir"] / "out" / "prefs.jsonl", "k_max": 3}
    opts.update(kw)
    k_max = opts.pop("k_max")
    return build(BuildOptions(**opts, symbols={"k_min": 2, "k_max": k_max}))


def _assert_no_output(files: dict) -> None:
    out = files["dir"] / "out"
    assert not out.exists() or list(out.iterdir()) == []  # no output, no manifest, no temp file


def _rewrite(files: dict, which: str, edit) -> None:
    data = files["q"] if which == "questions" else files["a"]
    edit(data)
    files[which].write_text(json.dumps(data))


def _fails(files: dict, *fragments: str, error=DataError) -> DataError:
    with pytest.raises(error) as info:
        _build(files)
    for f in fragments:
        assert f in str(info.value), str(info.value)
    _assert_no_output(files)
    return info.value


def test_empty_file(vqa_files):
    vqa_files["questions"].write_text("")
    _fails(vqa_files, "q.json", "empty file")


def test_truncated_json(vqa_files):
    text = vqa_files["annotations"].read_text()
    vqa_files["annotations"].write_text(text[: len(text) // 2])
    _fails(vqa_files, "a.json", "truncated")


@pytest.mark.parametrize("content, expected", [
    ("[1, 2]", "expected an object at the top level, found a list"),
    ('{"questions": {"a": 1}}', "field 'questions': expected a list, found an object"),
    ('{"data_subtype": "train2014", "questions": ["what?"]}', "questions[0]: expected an object, found a string"),
    ('{"data_subtype": "train2014", "questions": [{"image_id": "1", "question": "q?", "question_id": 1}]}',
     "questions[0]: field 'image_id': wrong type: found a string"),
    ('{"data_subtype": "x"}', "no 'questions' list"),
])
def test_wrong_json_types(vqa_files, content, expected):
    vqa_files["questions"].write_text(content)
    _fails(vqa_files, "q.json", expected)


def test_missing_field_names_file_line_item_and_field(vqa_files):
    _rewrite(vqa_files, "annotations", lambda d: d["annotations"][3].pop("answers"))
    err = _fails(vqa_files, "a.json:1: annotations[3]: field 'answers': missing")
    assert (err.line, err.item, err.field) == (1, "annotations[3]", "answers")


def test_unknown_question_id_in_annotations(vqa_files):
    _rewrite(vqa_files, "annotations", lambda d: d["annotations"][0].update(question_id=999999))
    _fails(vqa_files, "annotations[0]", "unknown question id 999999")


def test_question_without_annotation(vqa_files):
    _rewrite(vqa_files, "annotations", lambda d: d["annotations"].pop())
    _fails(vqa_files, "1 question(s) of q.json have no annotation")


def test_duplicate_question_ids(vqa_files):
    _rewrite(vqa_files, "questions", lambda d: d["questions"].append(dict(d["questions"][0])))
    _fails(vqa_files, "q.json", "duplicate question id")


def test_duplicate_annotation_ids(vqa_files):
    _rewrite(vqa_files, "annotations", lambda d: d["annotations"].append(dict(d["annotations"][0])))
    _fails(vqa_files, "duplicate annotation for question id")


def test_image_id_mismatch(vqa_files):
    _rewrite(vqa_files, "annotations", lambda d: d["annotations"][0].update(image_id=1))
    _fails(vqa_files, "differs from the question's")


@pytest.mark.parametrize("template", ["../{image_id}.jpg", "/etc/{image_id}.jpg", "a/../../{image_id}.jpg"])
def test_path_traversal_in_image_paths(vqa_files, template):
    with pytest.raises(DataError, match="unsafe image path"):
        _build(vqa_files, image_template=template)
    _assert_no_output(vqa_files)


def test_path_traversal_in_karpathy_file(tmp_path):
    data = {"images": [{"filepath": "../../etc", "filename": "passwd", "imgid": 0, "split": "train",
                        "sentences": [{"raw": "x"}]}]}
    (tmp_path / "k.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"images\[0\]: field 'filename': unsafe image path"):
        build(BuildOptions(source="coco", mode="sft", annotations=tmp_path / "k.json", image_root=tmp_path,
                           out=tmp_path / "out" / "x.jsonl"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _png_header(width: int, height: int) -> bytes:
    """Return a PNG whose header declares width x height (no real pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _break_first_image(files: dict, how: str) -> str:
    rel = files["coco_name"](files["q"]["questions"][0]["image_id"])
    path = files["image_root"] / rel
    if how == "zero_byte":
        path.write_bytes(b"")
    elif how == "png_as_jpeg":
        files["write_image"](path, 1, fmt="PNG")
    elif how == "huge_header":
        path.write_bytes(_png_header(20000, 20000))
    elif how == "truncated":
        import numpy as np
        from PIL import Image

        noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path, "JPEG")
        path.write_bytes(path.read_bytes()[:4000])  # header intact, scan data cut
    elif how == "missing":
        path.unlink()
    elif how == "not_an_image":
        path.write_text("hello")
    return rel


CASES = [("zero_byte", "empty", "zero-byte"), ("png_as_jpeg", "wrong_extension", "content is PNG"),
         ("huge_header", "too_large", "too large"), ("missing", "missing", "not found"),
         ("not_an_image", "corrupt", "not a readable image"), ("truncated", "corrupt", "")]


@pytest.mark.parametrize("how, reason, message", CASES)
def test_bad_image_is_an_error(vqa_files, how, reason, message):
    rel = _break_first_image(vqa_files, how)
    with pytest.raises(BadImageError) as info:
        _build(vqa_files, check_images="decode")
    assert info.value.reason == reason and message in str(info.value) and rel in str(info.value)
    _assert_no_output(vqa_files)


@pytest.mark.parametrize("how, reason, message", CASES)
def test_bad_image_is_a_counted_skip(vqa_files, how, reason, message):
    rel = _break_first_image(vqa_files, how)
    manifest = _build(vqa_files, check_images="decode", on_bad_image="skip")
    bad = manifest["bad_images"]
    assert bad["skipped"] == 1 and bad["by_reason"] == {reason: 1} and bad["first"][0]["image"] == rel
    assert manifest["counts"]["skipped_examples_bad_image"] == 3  # the fixture has 3 questions per image
    records = list(read_records(vqa_files["dir"] / "out" / "prefs.jsonl"))
    assert records and all(rel not in r.images for r in records)


def test_png_with_jpeg_extension_passes_when_not_strict(vqa_files):
    _break_first_image(vqa_files, "png_as_jpeg")
    manifest = _build(vqa_files, strict_extension=False)
    assert manifest["bad_images"]["skipped"] == 0


def test_header_check_does_not_decode(vqa_files):
    _break_first_image(vqa_files, "truncated")  # header intact, data cut: only decoding notices
    assert _build(vqa_files, check_images="header")["bad_images"]["skipped"] == 0


def test_error_mid_write_leaves_nothing(vqa_files, monkeypatch):
    from symdpo.data import recordio

    calls = {"n": 0}
    real = recordio.RecordWriter.write

    def failing(self, record):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full")
        real(self, record)

    monkeypatch.setattr(recordio.RecordWriter, "write", failing)
    with pytest.raises(RuntimeError):
        _build(vqa_files)
    _assert_no_output(vqa_files)
    assert not manifest_path(vqa_files["dir"] / "out" / "prefs.jsonl").exists()


def test_nonexistent_file(vqa_files):
    vqa_files["questions"] = Path(vqa_files["dir"] / "nope.json")
    with pytest.raises(DataError, match="nope.json: file not found"):
        _build(vqa_files)


def test_hf_dataset_neither_here_nor_on_the_hub(monkeypatch):
    """A --hf-dataset that is no local path and that the hub cannot serve: named, with what to give instead."""
    import datasets

    from symdpo.data.sources.hf import read_hf

    with pytest.raises(DataError, match=r"^\./nope: no such folder or file"):
        read_hf("./nope", "vqav2")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'you/nope' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"^you/nope: .*could not be reached.*hub dataset id"):
        read_hf("you/nope", "vqav2")
