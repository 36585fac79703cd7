"""Task registry: names, protocol values (OpenFlamingo evaluate.py), prompt fields, metrics, lazy loaders."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
from eval_helpers import pycocoevalcap_cider

from symdpo.eval.errors import EvalError
from symdpo.eval.metrics.cider import java_available
from symdpo.eval.prompts import render_context
from symdpo.eval.registry import Task, register_task
from symdpo.eval.tasks import get_task, list_tasks


def test_registered_tasks_and_decoding() -> None:
    assert {"coco", "flickr30k", "vqav2", "okvqa", "textvqa", "easyvqa", "symbol_icl"} <= set(list_tasks())
    # open_flamingo/eval/evaluate.py: captions 20, VQA 5, TextVQA 10 new tokens; 3 beams; length_penalty 0.0
    expected = {"coco": 20, "flickr30k": 20, "vqav2": 5, "okvqa": 5, "textvqa": 10, "easyvqa": 5}
    for name, max_new in expected.items():
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
        assert (task.generation.max_new_tokens, task.generation.num_beams, task.generation.length_penalty) == (
            max_new, 3, 0.0)
    assert get_task("coco").eval_split == "test" and get_task("vqav2").eval_split == "val"
    assert get_task("okvqa").postprocess("dogs, Question:") == "dog"
    assert get_task("symbol_icl").demos_in_record


def test_easyvqa_open_keeps_the_open_questions_of_easyvqa() -> None:
    """easy-VQA's open subset: every "what ..." question of the test split, nothing else, same protocol."""
    whole = get_task("easyvqa").load({}, "test").records
    split = get_task("easyvqa-open").load({}, "test")
    kept = [r.question for r in whole if r.question.startswith("what")]
    assert [r.question for r in split.records] == kept and 0 < len(kept) < len(whole)
    assert {"circle", "red"} <= {r.answer for r in split.records} and "yes" not in {r.answer for r in split.records}
    task = get_task("easyvqa-open")
    assert (task.eval_split, task.generation.max_new_tokens, task.metric) == ("test", 5, get_task("easyvqa").metric)


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown task 'vqa3'; known tasks: coco, easyvqa, easyvqa-open, flickr30k"):
        get_task("vqa3")


def test_register_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_task("coco")(lambda: get_task("coco"))


def test_prompt_items_use_first_caption_and_first_answer() -> None:
    cap = get_task("coco")
    demo = NS(id="1", image="a.jpg", captions=("  A cat on a mat. \n", "Another caption."))
    query = NS(id="2", image="b.jpg", captions=("x",))
    text, images = render_context(cap.template, [cap.prompt_item(demo, demo=True)], cap.prompt_item(query, demo=False))
    assert text == "<image>Output:A cat on a mat.<|endofchunk|>\n<image>Output:"
    assert images == ["a.jpg", "b.jpg"]

    vqa = get_task("vqav2")
    demo = NS(id="3", image="c.jpg", question="How many?", answers=("two", "2", "2"), answer="2")
    item = vqa.prompt_item(demo, demo=True)
    assert dict(item.fields) == {"question": "How many?", "answer": "two"}
    assert dict(vqa.prompt_item(demo, demo=False).fields) == {"question": "How many?"}


def test_metrics() -> None:
    recs = [NS(id="a", answers=("yes",) * 10, answer="yes"), NS(id="b", answers=("2",) * 3 + ("3",) * 7, answer="3")]
    out = get_task("vqav2").metric({"a": "Yes", "b": "two"}, recs)
    assert out["score"] == pytest.approx(100 * (1.0 + 0.9) / 2)
    easy = [NS(id="a", answer="circle", answers=("circle",)), NS(id="b", answer="red", answers=("red",))]
    assert get_task("easyvqa").metric({"a": "circle", "b": "blue"}, easy)["score"] == pytest.approx(50.0)
    with pytest.raises(KeyError, match="no prediction"):
        get_task("vqav2").metric({"a": "yes"}, recs)
    with pytest.raises(ValueError, match="no answers"):
        get_task("vqav2").metric({"a": "yes"}, [NS(id="a", answers=())])
    caps = [NS(id=str(i), captions=(c, c + " today")) for i, c in enumerate(["a dog runs", "a red car", "two cats"])]
    preds = {"0": "a dog runs", "1": "a red car", "2": "a cat"}
    out = get_task("coco").metric(preds, caps)
    want = pycocoevalcap_cider(preds, {c.id: list(c.captions) for c in caps})[0] if java_available() else None
    assert out["tokenizer"] == ("ptb" if java_available() else "python")
    if want is not None:  # pycocoevalcap end to end (its PTB tokenizer needs Java), in OpenFlamingo's 100x scale
        assert out["score"] == pytest.approx(100 * want)
    probes = [NS(id="p", answer="rhondda"), NS(id="q", answer="odwyer")]
    assert get_task("symbol_icl").metric({"p": "Rhondda", "q": "rhondda"}, probes)["score"] == 50.0


def test_loaders_read_the_data_readers(tmp_path) -> None:
    test = get_task("easyvqa").load({}, "test")
    assert len(test.records) == 9673 and test.records[0].id == "test-0"
    assert (test.image_root / test.records[0].image).is_file()
    with pytest.raises(EvalError, match=r"task textvqa needs --annotations \(the TextVQA val JSON\)"):
        get_task("textvqa").load({}, "val")
    with pytest.raises(EvalError, match="task coco needs --image-root"):
        get_task("coco").load({"annotations": str(tmp_path / "k.json")}, "test")
