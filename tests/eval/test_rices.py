"""RICES / MMICES with a retrieval encoder independent of the evaluated model.

Compared against: transformers' own CLIPModel forward (image_embeds / text_embeds, normalised by transformers)
for the encoder; a brute-force numpy cosine ranking over the features found in the FeatureCache for the
selection; two runs, one process vs two shards, and two model families for the CLI's demo_ids.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_helpers import error_line
from PIL import Image
from typer.testing import CliRunner

from symdpo.data.features import content_hash
from symdpo.data.retrieval import (
    image_cache,
    load_retrieval_encoder,
    text_cache,
    text_key,
    tiny_clip_parts,
)
from symdpo.data.sources import easyvqa_root
from symdpo.eval.cli import app
from symdpo.eval.config import EvalConfig
from symdpo.eval.datasets import Split
from symdpo.eval.plan import TaskPlan, make_trial
from symdpo.eval.runner import add_rices
from symdpo.eval.tasks import get_task

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def encoder():
    """Return the tiny-clip retrieval encoder (on CPU)."""
    return load_retrieval_encoder("tiny-clip")


def _images() -> list[Image.Image]:
    """Return four easy-VQA train images and two synthetic ones of other sizes."""
    root = easyvqa_root("train") / "images"
    return [Image.open(root / f"{i}.png").convert("RGB") for i in range(4)] + [
        Image.new("RGB", (40, 24), (200, 30, 30)), Image.new("RGB", (17, 51), (10, 120, 240))]


def test_tiny_clip_equals_transformers_clip(encoder) -> None:
    """Embeddings equal transformers' CLIPModel forward (its own L2-normalised image_embeds / text_embeds)."""
    images, texts = _images(), ["what color is the shape?", "a photo of a cat sitting on a table", "circle"]
    model, processor, tok = tiny_clip_parts()  # rebuilt: the seeded build is the same model each time
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=pixels)
    np.testing.assert_allclose(encoder.encode_images(images), out.image_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(encoder.encode_texts(texts), out.text_embeds.numpy(), atol=1e-5)
    assert encoder.encode_images(images).shape == (6, 16)
    assert (enc["input_ids"][:, -1] == tok.eos_token_id).all()  # each text ends in the token CLIP pools at


def test_saved_folder_loads_as_the_same_encoder(encoder, tmp_path) -> None:
    """A save_pretrained folder of tiny-clip loads (AutoModel, PIL image processor) to the same embeddings."""
    model, processor, tok = tiny_clip_parts()
    for part in (model, processor, tok):
        part.save_pretrained(tmp_path / "clip")
    saved = load_retrieval_encoder(str(tmp_path / "clip"))
    assert saved.name == str((tmp_path / "clip").resolve())
    np.testing.assert_allclose(saved.encode_images(_images()), encoder.encode_images(_images()), atol=1e-6)
    np.testing.assert_allclose(saved.encode_texts(["is there a circle?"]), encoder.encode_texts(["is there a circle?"]),
                               atol=1e-6)


def _plan(shots_pool: int = 48) -> TaskPlan:
    """Return an easy-VQA plan whose evaluated items come from the query set itself (own images in the pool)."""
    task = get_task("easyvqa")
    train = task.load({}, "train")
    trial = make_trial(train, shots_pool, 3)
    ev = Split([trial.pool[i] for i in (0, 5, 11, 17, 23, 40)], train.image_root)
    return TaskPlan(task, ev, train, [trial])


class Counting:
    """Wraps an encoder, counting the images it encodes (or refusing to encode any)."""

    def __init__(self, inner, *, refuse: bool = False) -> None:
        self.inner, self.refuse, self.images = inner, refuse, 0
        self.name, self.batch_size = inner.name, inner.batch_size

    def encode_images(self, images):
        """Return the inner encoder's embeddings after counting the images."""
        assert not self.refuse, "encoded an image that should have come from the cache"
        self.images += len(images)
        return self.inner.encode_images(images)

    def encode_texts(self, texts):
        """Return the inner encoder's text embeddings."""
        assert not self.refuse, "encoded a text that should have come from the cache"
        return self.inner.encode_texts(texts)


def _brute_force_images(plan, record, cache, k) -> tuple[list[int], np.ndarray, list[str]]:
    """Return the query's top-k pool images by float64 cosine, ascending, each as its first item's index."""
    trial = plan.trials[0]
    feat = {}
    for rec in [record, *trial.pool]:
        if rec.image not in feat:
            feat[rec.image] = cache.get(content_hash(Path(plan.train.image_root) / rec.image)).astype(np.float64)
    q = feat[record.image] / np.linalg.norm(feat[record.image])
    first: dict[str, int] = {}
    for i, rec in enumerate(trial.pool):
        first.setdefault(rec.image, i)
    cands = [(float(feat[img] @ q / np.linalg.norm(feat[img])), -i, img) for img, i in first.items()
             if img != record.image]
    cands.sort()  # ascending similarity; ties: the earlier pool item counts as more similar
    top = cands[-k:]
    return [-c[1] for c in top], q, [c[2] for c in cands]


def test_rices_equals_brute_force_cosine_over_cached_features(encoder, tmp_path) -> None:
    """plan.demos equals a numpy cosine top-k over the FeatureCache's vectors: most similar last, own image out."""
    config = EvalConfig(model="tiny", tasks=["easyvqa"], demo_selection="rices", retrieval_encoder="tiny-clip")
    uncached, counted = _plan(), Counting(encoder)
    add_rices(uncached, counted, config)
    pool_images = {r.image for r in uncached.trials[0].pool}
    eval_images = {r.image for r in uncached.eval.records}
    assert counted.images == len(eval_images) + len(pool_images)  # without a cache: once per distinct image and call
    plan, counted = _plan(), Counting(encoder)
    config = config.model_copy(update={"feature_cache": str(tmp_path / "cache")})
    add_rices(plan, counted, config)
    assert counted.images == len(pool_images)  # with one: once per image content (eval images are pool images)
    trial = plan.trials[0]
    cache = image_cache(tmp_path / "cache", encoder)
    assert len(list(cache.dir.rglob("*.npy"))) == len(pool_images)  # eval images are pool images: one entry each
    for k in (2, 4, 8):
        for record in plan.eval.records:
            want, _, _ = _brute_force_images(plan, record, cache, k)
            got = plan.demos(trial, record, k)
            assert [d.id for d in got] == [trial.pool[i].id for i in want]
            assert record.image not in {d.image for d in got} and len({d.image for d in got}) == k
    # a second preparation reads every vector from the cache: the encoder is never called
    again = _plan()
    add_rices(again, Counting(encoder, refuse=True), config)
    for record in plan.eval.records:
        assert [d.id for d in again.demos(again.trials[0], record, 4)] == [d.id for d in plan.demos(trial, record, 4)]


def test_rices_text_equals_brute_force_rerank(encoder, tmp_path) -> None:
    """rices-text equals: numpy top-K images by cosine, each image's best question, reordered by question cosine."""
    plan = _plan()
    config = EvalConfig(model="tiny", tasks=["easyvqa"], demo_selection="rices-text", retrieval_encoder="tiny-clip",
                        feature_cache=str(tmp_path / "cache"), mmices_k=6)
    add_rices(plan, encoder, config)
    trial = plan.trials[0]
    images, texts = image_cache(tmp_path / "cache", encoder), text_cache(tmp_path / "cache", encoder)
    changed = 0
    for k in (2, 4):
        for record in plan.eval.records:
            _, _, ranked = _brute_force_images(plan, record, images, 0)
            kept = set(ranked[-6:])  # K = mmices_k = 6 images by image similarity
            qt = texts.get(text_key(record.question)).astype(np.float64)
            best = {}
            for i, rec in enumerate(trial.pool):
                if rec.image in kept:
                    t = texts.get(text_key(rec.question)).astype(np.float64)
                    s = float(t @ qt / np.linalg.norm(t) / np.linalg.norm(qt))
                    if rec.image not in best or s > best[rec.image][0]:
                        best[rec.image] = (s, i)
            image_rank = {img: n for n, img in enumerate(ranked)}
            order = sorted(best, key=lambda img: (best[img][0], image_rank[img]))[-k:]
            got = plan.demos(trial, record, k)
            assert [d.id for d in got] == [trial.pool[best[img][1]].id for img in order]
            assert record.image not in {d.image for d in got}
            changed += [d.image for d in got] != ranked[-k:]
    assert changed  # the text rerank did reorder or replace some image-only choices


def _rows(path: Path) -> dict[tuple, list[str]]:
    """Return {(id, shots, trial): demo_ids} of a run's merged predictions."""
    rows = [json.loads(line) for line in (path / "predictions.jsonl").read_text().splitlines()]
    return {(r["id"], r["shots"], r["trial"]): r["demo_ids"] for r in rows}


ARGS = ["run", "--task", "easyvqa", "--demos", "rices", "--retrieval-encoder", "tiny-clip", "--shots", "2",
        "--num-samples", "6", "--trials", "1", "--query-set-size", "32", "--no-progress"]


def test_cli_rices_same_demos_across_runs_shards_and_families(cli, tmp_path) -> None:
    """Two runs, 1 process vs 2 shards + merge, and tiny Flamingo vs tiny Qwen2-VL give identical demo_ids."""
    runs = {}
    for name in ("a", "b"):
        r = cli.invoke(app, [*ARGS, "--model", "tiny", "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        runs[name] = _rows(tmp_path / name)
    for rank in (0, 1):
        r = cli.invoke(app, [*ARGS, "--model", "tiny", "--rank", str(rank), "--world-size", "2",
                             "--out", str(tmp_path / "sharded")])
        assert r.exit_code == 0, r.output
    merged = cli.invoke(app, ["merge", str(tmp_path / "sharded")])
    assert merged.exit_code == 0, merged.output
    runs["sharded"] = _rows(tmp_path / "sharded")
    r = cli.invoke(app, [*ARGS, "--model", "tiny-qwen2-vl", "--out", str(tmp_path / "qwen")])
    assert r.exit_code == 0, r.output
    runs["qwen"] = _rows(tmp_path / "qwen")
    assert len(runs["a"]) == 6 and all(len(d) == 2 for d in runs["a"].values())
    assert runs["b"] == runs["a"] and runs["sharded"] == runs["a"] and runs["qwen"] == runs["a"]
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (saved["demo_selection"], saved["retrieval_encoder"]) == ("rices", "tiny-clip")
    # a resumed run with another retrieval encoder is refused: its predictions would differ
    for part in tiny_clip_parts():
        part.save_pretrained(tmp_path / "clip")
    other = cli.invoke(app, [*ARGS[:6], str(tmp_path / "clip"), *ARGS[7:], "--model", "tiny", "--out",
                             str(tmp_path / "a")])
    assert "holds a run with different retrieval_encoder" in error_line(other)


@pytest.fixture
def no_model(monkeypatch):
    """Return a CliRunner on which loading any model fails the test: the encoder check must come first."""
    import symdpo.models.registry as presets

    monkeypatch.setattr(presets, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    return CliRunner()


def test_missing_local_encoder_is_one_line(no_model, tmp_path) -> None:
    """A folder that is not there (or holds no config.json) ends in one usage-error line naming the option."""
    args = [a if a != "tiny-clip" else "/no/such/dir" for a in ARGS]
    result = no_model.invoke(app, [*args, "--model", "tiny", "--out", str(tmp_path / "r")])
    line = error_line(result)
    assert result.exit_code == 2 and line.startswith("error: --retrieval-encoder /no/such/dir: no such folder"), line
    (tmp_path / "empty").mkdir()
    args = [a if a != "tiny-clip" else str(tmp_path / "empty") for a in ARGS]
    line = error_line(no_model.invoke(app, [*args, "--model", "tiny", "--out", str(tmp_path / "r")]))
    assert "a folder without config.json" in line, line


def test_uncached_hub_encoder_offline_is_one_line(no_model, tmp_path, monkeypatch) -> None:
    """A hub id not in an empty HF_HOME under HF_HUB_OFFLINE=1 fails at once, naming the repo, the cache and the fix."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # huggingface_hub read both variables when it was imported: set its constants as the variables now say
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    args = [a if a != "tiny-clip" else "openai/clip-vit-base-patch32" for a in ARGS]
    start = time.monotonic()
    result = no_model.invoke(app, [*args, "--model", "tiny", "--out", str(tmp_path / "r")])
    line = error_line(result)
    assert time.monotonic() - start < 10
    assert line.startswith("error: --retrieval-encoder: 'openai/clip-vit-base-patch32' is not in the Hugging Face cache")
    assert str(tmp_path / "hf" / "hub") in line and "HF_HUB_OFFLINE" in line and "HF_HOME" in line, line
