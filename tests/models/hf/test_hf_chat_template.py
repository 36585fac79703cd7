"""An instruct family's few-shot prompt is exactly what its processor's chat template writes for those turns.

Compared against: ``processor.apply_chat_template`` run with the chat template that Qwen2-VL-Instruct
publishes (its ``chat_template.json``; our tiny tokenizers are trained offline and carry none), on the same
messages: one user turn (image + question + Qwen's VQA instruction) and one assistant turn per demonstration,
then the query's user turn and the generation prompt.
"""

from __future__ import annotations

import pytest
from hf_fixtures import load, picture

from symdpo.eval.prompts import PromptItem, render_context

# Qwen2-VL-Instruct's published chat template (Qwen/Qwen2-VL-2B-Instruct, chat_template.json)
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
VQA_INSTRUCTION = "\nAnswer the question using a single word or phrase."


def _messages(demos, question):
    out = []
    for q, a in demos:
        out.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q + VQA_INSTRUCTION}]})
        out.append({"role": "assistant", "content": [{"type": "text", "text": a}]})
    out.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question + VQA_INSTRUCTION}]})
    return out


def _as_the_model_reads_it(lmm, text: str) -> str:
    fmt = lmm.prompt_format("vqa")
    return text.replace(fmt.image_marker, lmm.spec.placeholder).replace(fmt.end_of_chunk, lmm.end_of_chunk)


@pytest.mark.parametrize("name", ["tiny-qwen2-vl", "tiny-qwen2.5-vl"])
@pytest.mark.parametrize("shots", [0, 1, 3])
def test_eval_and_infer_prompts_equal_the_chat_template(name, shots):
    from symdpo.infer import Predictor

    lmm = load(name)
    demos = [(f"What color is shape {i}?", ["red", "blue", "teal"][i]) for i in range(shots)]
    question = "What shape is in the image?"
    expected = lmm.processor.apply_chat_template(_messages(demos, question), chat_template=QWEN2_VL_CHAT_TEMPLATE,
                                                 add_generation_prompt=True, tokenize=False)
    fmt = lmm.prompt_format("vqa")  # native: the default for an instruct model
    items = [PromptItem(picture(i), {"question": q, "answer": a}) for i, (q, a) in enumerate(demos)]
    text, _ = render_context(fmt, items, PromptItem(picture(9), {"question": question}))
    assert _as_the_model_reads_it(lmm, text) == expected  # what `symdpo eval run` writes
    context = Predictor(lmm).context([(picture(i), q, a) for i, (q, a) in enumerate(demos)],
                                     (picture(9), question))
    infer_text = "".join(it if isinstance(it, str) else fmt.image_marker for it in context)
    assert _as_the_model_reads_it(lmm, infer_text) == expected  # what `symdpo infer` writes


def test_a_turn_end_inside_a_demonstration_is_no_boundary():
    """Dropping the first demonstration of a too-long chat context keeps the system turn and whole turns."""
    lmm = load("tiny-qwen2-vl")
    fmt = lmm.prompt_format("vqa")
    items = [PromptItem(picture(i), {"question": f"q{i}?", "answer": a}) for i, a in enumerate(["red", "blue"])]
    from symdpo.eval.prompts import to_interleaved

    full = to_interleaved(*render_context(fmt, items, PromptItem(picture(9), {"question": "q?"})))
    shorter = to_interleaved(*render_context(fmt, items[1:], PromptItem(picture(9), {"question": "q?"})))
    want = lmm.tokenize([shorter]).input_ids.shape[1]
    old = lmm.encoder.max_length
    lmm.encoder.max_length, lmm.encoder.warned = want, False
    try:
        batch = lmm.tokenize([full])
    finally:
        lmm.encoder.max_length = old
    assert batch.dropped == [1]
    assert batch.input_ids[0].tolist() == lmm.tokenize([shorter]).input_ids[0].tolist()
