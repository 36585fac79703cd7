"""Prompts and post-processing, character for character against OpenFlamingo's evaluation code.

Expected strings are written out from ``open_flamingo/eval/evaluate.py`` (``evaluate_vqa`` and
``evaluate_captioning``: ``"".join(prompt(demo) + "\\n" for demo in demos)``, then the query prompt; for
0 shots two demos with ``context_text.replace("<image>", "")``) and the prompt functions of
``open_flamingo/eval/models/open_flamingo.py`` (``get_vqa_prompt``, ``get_caption_prompt``).
"""

from __future__ import annotations

import pytest

from symdpo.eval.postprocess import postprocess_caption, postprocess_okvqa, postprocess_vqa
from symdpo.eval.prompts import (
    CAPTION_TEMPLATE,
    VQA_TEMPLATE,
    PromptItem,
    PromptTemplate,
    effective_num_shots,
    render_context,
)
from symdpo.models.prompts import to_interleaved

IMG1, IMG2, IMG3 = object(), object(), object()
VQA_DEMOS = [
    PromptItem(IMG1, {"question": "What color is the cat?", "answer": "black"}),
    PromptItem(IMG2, {"question": "How many dogs are there?", "answer": "2"}),
]
VQA_QUERY = PromptItem(IMG3, {"question": "Is it raining?"})
CAPTION_DEMOS = [PromptItem(IMG1, {"caption": "A cat on a mat."}), PromptItem(IMG2, {"caption": "Two dogs in snow."})]
CAPTION_QUERY = PromptItem(IMG3)


def test_two_shot_vqa_context() -> None:
    text, images = render_context(VQA_TEMPLATE, VQA_DEMOS, VQA_QUERY)
    assert text == (
        "<image>Question:What color is the cat? Short answer:black<|endofchunk|>\n"
        "<image>Question:How many dogs are there? Short answer:2<|endofchunk|>\n"
        "<image>Question:Is it raining? Short answer:"
    )
    assert images == [IMG1, IMG2, IMG3]


def test_two_shot_caption_context() -> None:
    text, images = render_context(CAPTION_TEMPLATE, CAPTION_DEMOS, CAPTION_QUERY)
    assert text == (
        "<image>Output:A cat on a mat.<|endofchunk|>\n<image>Output:Two dogs in snow.<|endofchunk|>\n<image>Output:"
    )
    assert images == [IMG1, IMG2, IMG3]


def test_zero_shot_uses_two_text_only_demos() -> None:
    assert effective_num_shots(0) == 2
    assert effective_num_shots(0, text_only_zero_shot=False) == 0
    assert effective_num_shots(4) == 4
    with pytest.raises(ValueError):
        effective_num_shots(-1)
    text, images = render_context(VQA_TEMPLATE, VQA_DEMOS, VQA_QUERY, text_only_demos=True)
    assert text == (
        "Question:What color is the cat? Short answer:black<|endofchunk|>\n"
        "Question:How many dogs are there? Short answer:2<|endofchunk|>\n"
        "<image>Question:Is it raining? Short answer:"
    )
    assert images == [IMG3]
    text, images = render_context(CAPTION_TEMPLATE, CAPTION_DEMOS, CAPTION_QUERY, text_only_demos=True)
    assert text == "Output:A cat on a mat.<|endofchunk|>\nOutput:Two dogs in snow.<|endofchunk|>\n<image>Output:"
    assert images == [IMG3]


def test_interleaved_list() -> None:
    text, images = render_context(VQA_TEMPLATE, VQA_DEMOS[:1], VQA_QUERY)
    assert to_interleaved(text, images) == [
        IMG1,
        "Question:What color is the cat? Short answer:black<|endofchunk|>\n",
        IMG3,
        "Question:Is it raining? Short answer:",
    ]
    with pytest.raises(ValueError, match="2 '<image>' markers but 1 images"):
        to_interleaved(text, images[:1])


def test_template_override_per_model_family() -> None:
    chat = PromptTemplate(
        demo="User:{image}{question}\nAssistant: {answer}{end}",
        query="User:{image}{question}\nAssistant:",
        image_marker="<img>",
        end_of_chunk="<end_of_utterance>",
        separator="",
    )
    text, images = render_context(chat, VQA_DEMOS[:1], VQA_QUERY)
    assert text == "User:<img>What color is the cat?\nAssistant: black<end_of_utterance>User:<img>Is it raining?\nAssistant:"
    assert to_interleaved(text, images, chat.image_marker)[2] == "What color is the cat?\nAssistant: black<end_of_utterance>User:"
    with pytest.raises(KeyError, match="needs field 'answer'"):
        render_context(VQA_TEMPLATE, [PromptItem(IMG1, {"question": "q"})], VQA_QUERY)


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        (" a cat sitting on a mat", " a cat sitting on a mat"),  # no stripping, as the reference
        ('a "happy" dog\nOutput: another', "a happy dog\n"),
        ("a dog Output:x Output:y", "a dog "),
    ],
)
def test_caption_postprocess(generated: str, expected: str) -> None:
    assert postprocess_caption(generated) == expected


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        ("yes", "yes"),
        ("black\nQuestion:What", "black\n"),
        ("two Short answer", "two "),
        ("red Answer: blue", "red "),
        ("red, white, blue", "red"),
        ("red,white", "red,white"),  # only ", " splits
        ("3, Question:x", "3"),
    ],
)
def test_vqa_postprocess(generated: str, expected: str) -> None:
    assert postprocess_vqa(generated) == expected


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        ("dogs", "dog"),  # plural noun -> singular (inflection.singularize)
        ("surfing", "surf"),  # -ing -> verb lemma
        ("christmas", "christmas"),  # manual table: singularize would give "christma"
        ("clothes", "cloth"),  # manual table
        ("tennis", "tennis"),  # not a plural noun
        ("frisbees", "frisbee"),  # unknown to the dictionary, ends in "s"
        ("glasses, Question:", "glass"),  # VQA post-processing first
        ("red", "red"),
    ],
)
def test_okvqa_postprocess(generated: str, expected: str) -> None:
    assert postprocess_okvqa(generated) == expected
