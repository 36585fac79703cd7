"""``symdpo data build`` / ``inspect`` through the typer app, on fixtures in the official formats."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from symdpo.data.cli import app
from symdpo.data.recordio import read_records

runner = CliRunner()


def test_build_then_inspect_vqav2(vqa_files, tmp_path):
    out = tmp_path / "o" / "prefs.jsonl"
    result = runner.invoke(app, ["build", "--source", "vqav2", "--questions", str(vqa_files["questions"]),
                                 "--annotations", str(vqa_files["annotations"]), "--image-root",
                                 str(vqa_files["image_root"]), "--out", str(out), "--k-max", "3",
                                 "--check-images", "decode"])
    assert result.exit_code == 0, result.output
    assert "records to" in result.output
    manifest = json.loads((tmp_path / "o" / "prefs.jsonl.manifest.json").read_text())
    assert manifest["counts"]["records"] == len(list(read_records(out)))
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["inspect", str(out), "--n", "2", "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    assert "Short answer:" in result.output and "all valid" in result.output
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_sft_captions_parquet(tmp_path, data_helpers):
    images = []
    for i in range(6):
        data_helpers.write_image(tmp_path / "img" / "val2014" / f"{i}.jpg", i)
        images.append({"filepath": "val2014", "filename": f"{i}.jpg", "cocoid": i, "imgid": i, "split": "train",
                       "sentences": [{"raw": f"caption {i} a"}, {"raw": f"caption {i} b"}]})
    (tmp_path / "k.json").write_text(json.dumps({"images": images}))
    out = tmp_path / "sft.parquet"
    result = runner.invoke(app, ["build", "--source", "coco", "--mode", "sft", "--split", "train",
                                 "--annotations", str(tmp_path / "k.json"), "--image-root", str(tmp_path / "img"),
                                 "--out", str(out), "--k-min", "2", "--k-max", "3"])
    assert result.exit_code == 0, result.output
    records = list(read_records(out))
    assert len(records) == 6 and {r.kind for r in records} == {"caption"}
    for r in records:
        assert r.target in r.query.answers and all(d.question is None for d in r.context)
    assert runner.invoke(app, ["inspect", str(out), "--sheet", str(tmp_path / "s.png")]).exit_code == 0


def test_build_sft_vqa_has_both_kinds(tmp_path):
    out = tmp_path / "sft.jsonl"
    result = runner.invoke(app, ["build", "--source", "easyvqa", "--mode", "sft", "--out", str(out),
                                 "--max-records", "300", "--check-images", "none"])
    assert result.exit_code == 0, result.output
    records = list(read_records(out))
    kinds = {r.kind for r in records}
    assert kinds == {"vqa", "symbol"}
    for r in records:
        if r.kind == "symbol":
            assert any(d.answer == r.target and d.original_answer == r.query.answer for d in r.context)
        else:
            assert r.target == r.query.answer


def test_bad_options_and_bad_data_exit_cleanly(tmp_path, vqa_files):
    r = runner.invoke(app, ["build", "--source", "vqav2", "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "needs --questions" in r.output
    r = runner.invoke(app, ["build", "--source", "easyvqa", "--out", str(tmp_path / "x.jsonl"), "--k-min", "5",
                            "--k-max", "3"])
    assert r.exit_code == 2
    vqa_files["annotations"].write_text("[]")
    r = runner.invoke(app, ["build", "--source", "vqav2", "--questions", str(vqa_files["questions"]),
                            "--annotations", str(vqa_files["annotations"]), "--image-root",
                            str(vqa_files["image_root"]), "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 1 and "a.json" in r.output and not (tmp_path / "x.jsonl").exists()
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    r = runner.invoke(app, ["inspect", str(tmp_path / "bad.jsonl")])
    assert r.exit_code == 1 and "bad.jsonl:1" in r.output
