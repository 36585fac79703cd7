"""Every instruct family's few-shot prompt is the text its published chat template writes for those turns.

Compared against: the chat templates the models publish, read from ``../shared/chat_templates/`` (provenance in
its SOURCES.md) and rendered by transformers' own ``processor.apply_chat_template`` on the same messages: one
user turn (image + question + the family's VQA instruction, or image + caption prompt) and one assistant turn
per demonstration, then the query's user turn and the generation prompt. IDEFICS-instruct publishes no
template: its model card's documented conversation (``idefics1-9b-instruct.PROMPT_FORMAT.txt``) is compared.
The text is the one the model reads: image markers as the processor's placeholder, the context's trailing
space moved to the answer (models/prompts.py), the BOS the template writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hf_fixtures import load, picture

from symdpo.eval.prompts import PromptItem, render_context
from symdpo.models.prompts import move_trailing_spaces

TEMPLATES = Path(__file__).resolve().parents[4] / "shared" / "chat_templates"
QWEN = ("\nAnswer the question using a single word or phrase.", "Describe the image in one sentence.")
EU3 = ("\nGive a very brief answer.", "Caption the image in one sentence.")
# preset -> (published template, VQA instruction after the question, caption prompt)
INSTRUCT = {
    "tiny-qwen2-vl": ("qwen2-vl.jinja", *QWEN), "tiny-qwen2.5-vl": ("qwen2.5-vl.jinja", *QWEN),
    "tiny-qwen3-vl": ("qwen3-vl.jinja", *QWEN), "tiny-gemma3": ("gemma3.jinja", *QWEN),
    "tiny-idefics2": ("idefics2.jinja", *EU3), "tiny-idefics3": ("idefics3.jinja", *EU3),
    "tiny-smolvlm": ("smolvlm.jinja", *EU3),
    # LLaVA-OneVision's template writes "<image>\n" before a turn's text: the newline is part of the text it reads
    "tiny-llava-onevision": ("llava-onevision.jinja", *QWEN),
}
DEMOS = [("What color is shape 0?", "red"), ("How many?", "3"), ("Which sign?", "$5")]
CAPTIONS = ["A red square.", "Two cats on a mat.", "A sign."]


def _messages(kind: str, shots: int, instruction: str, caption_prompt: str) -> list[dict]:
    def user(text):
        return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}

    def assistant(text):
        return {"role": "assistant", "content": [{"type": "text", "text": text}]}

    out = []
    for i in range(shots):
        q, a = DEMOS[i]
        out += [user(q + instruction), assistant(a)] if kind == "vqa" else [user(caption_prompt), assistant(CAPTIONS[i])]
    return out + [user("What shape is it?" + instruction if kind == "vqa" else caption_prompt)]


def _items(kind: str, shots: int):
    if kind == "vqa":
        demos = [PromptItem(picture(i), {"question": q, "answer": a}) for i, (q, a) in enumerate(DEMOS[:shots])]
        return demos, PromptItem(picture(9), {"question": "What shape is it?"})
    return [PromptItem(picture(i), {"caption": c}) for i, c in enumerate(CAPTIONS[:shots])], PromptItem(picture(9))


def _symdpo_texts(lmm, kind: str, shots: int) -> list[str]:
    """Return what `symdpo eval run` and `symdpo infer` write for the same turns, as the model reads them."""
    from symdpo.infer import Predictor

    fmt = lmm.prompt_format(kind)
    demos, query = _items(kind, shots)
    eval_text, _ = render_context(fmt, demos, query)
    if kind == "vqa":
        context = Predictor(lmm).context([(d.image, d.fields["question"], d.fields["answer"]) for d in demos],
                                         (query.image, query.fields["question"]), "vqa")
    else:
        context = Predictor(lmm).context([(d.image, d.fields["caption"]) for d in demos], query.image, "caption")
    infer_text = "".join(it if isinstance(it, str) else fmt.image_marker for it in context)
    placeholder = lmm.spec.placeholder or "[IMG]"  # IDEFICS v1 takes images as list items: the card's [IMG]
    return [move_trailing_spaces(t.replace(fmt.image_marker, placeholder).replace(fmt.end_of_chunk, lmm.end_of_chunk))[0]
            for t in (eval_text, infer_text)]


@pytest.mark.parametrize("name", list(INSTRUCT))
@pytest.mark.parametrize("kind,shots", [("vqa", 0), ("vqa", 1), ("vqa", 3), ("caption", 0), ("caption", 2)])
def test_eval_and_infer_prompts_equal_the_published_template(name, kind, shots):
    lmm = load(name)
    template, instruction, caption_prompt = INSTRUCT[name]
    expected = lmm.processor.apply_chat_template(
        _messages(kind, shots, instruction, caption_prompt), chat_template=(TEMPLATES / template).read_text(),
        add_generation_prompt=True, tokenize=False)
    eval_text, infer_text = _symdpo_texts(lmm, kind, shots)
    assert _with_bos(lmm, eval_text) == _with_bos(lmm, expected)  # what `symdpo eval run` writes
    assert _with_bos(lmm, infer_text) == _with_bos(lmm, expected)  # what `symdpo infer` writes


def _with_bos(lmm, text: str) -> str:
    """Return ``text`` with the BOS the tokenizer writes before a text that does not start with it."""
    tok = lmm.tokenizer
    adds = tok("x")["input_ids"][:1] == [tok.bos_token_id]
    return tok.bos_token + text if adds and not text.startswith(tok.bos_token) else text


def _card_conversation(kind: str, shots: int) -> str:
    """Return the conversation of IDEFICS-instruct's model card for these turns, written with its own pieces."""
    doc = (TEMPLATES / "idefics1-9b-instruct.PROMPT_FORMAT.txt").read_text()
    line = next(ln.strip() for ln in doc.splitlines() if ln.strip().startswith("User: What is in this image?[IMG]"))
    line = line.replace("\\n", "\n")
    # the card's second exchange is the image-first turn symdpo writes: "User:[IMG]<text><end_of_utterance>\n"
    user, answer_cue, turn_end, prompt = "User:[IMG]", "<end_of_utterance>\nAssistant: ", "<end_of_utterance>\n", "Assistant:"
    for piece in (user, answer_cue, turn_end, "\n" + prompt):
        assert piece in line, piece
    text = ""
    for i in range(shots):
        q, a = DEMOS[i] if kind == "vqa" else ("Describe the image briefly.", CAPTIONS[i])
        text += user + q + answer_cue + a + turn_end
    q = "What shape is it?" if kind == "vqa" else "Describe the image briefly."
    return text + user + q + turn_end + prompt


@pytest.mark.parametrize("kind,shots", [("vqa", 0), ("vqa", 1), ("vqa", 3), ("caption", 0), ("caption", 2)])
def test_idefics_instruct_prompt_is_its_model_card_conversation(kind, shots):
    from symdpo.models.hf.adapter import HFInterleavedLMM

    base = load("tiny-idefics")
    lmm = HFInterleavedLMM(base.hf, base.processor, family=base.spec, prompts=base.spec.prompts["idefics-instruct"])
    eval_text, infer_text = _symdpo_texts(lmm, kind, shots)
    assert eval_text == infer_text == _card_conversation(kind, shots)


def test_a_turn_end_inside_a_demonstration_is_no_boundary():
    """Dropping the first demonstration of a too-long chat context keeps the system turn and whole turns."""
    lmm = load("tiny-qwen2-vl")
    fmt = lmm.prompt_format("vqa")
    items = [PromptItem(picture(i), {"question": f"q{i}?", "answer": a}) for i, a in enumerate(["red", "blue"])]
    from symdpo.models.prompts import to_interleaved

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
