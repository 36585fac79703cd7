"""VQAv2 and OK-VQA: a questions file and an annotations file (the official VQA format), joined by id.

Questions: ``{"data_subtype": "train2014", "questions": [{"question_id", "image_id", "question"}]}``.
Annotations: ``{"annotations": [{"question_id", "image_id", "answers": [{"answer"}], "multiple_choice_answer"?,
"question_type"?, "answer_type"?}]}``. Images: ``{subtype}/COCO_{subtype}_{image_id:012d}.jpg`` under the image
root unless ``image_template`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from symdpo.data.errors import DataError
from symdpo.data.sources.fields import Item
from symdpo.data.sources.jsonstream import JsonStream
from symdpo.data.sources.types import VQAExample, derived_question_type, most_frequent

COCO_TEMPLATE = "{subtype}/COCO_{subtype}_{image_id:012d}.jpg"


def _read_questions(path: Path) -> tuple[dict[int, tuple[int, str]], str | None]:
    """Return {question_id: (image_id, question)} and the file's data_subtype."""
    stream = JsonStream(path)
    table: dict[int, tuple[int, str]] = {}
    subtype, seen = None, False
    for key, i, value in stream.entries({"questions"}):
        if i is None:
            if key == "data_subtype" and isinstance(value, str):
                subtype = value
            continue
        seen = True
        item = Item(value, path, f"questions[{i}]", stream.line)
        qid = item.get("question_id", int)
        if qid in table:
            raise item.error(f"duplicate question id {qid}", "question_id")
        table[qid] = (item.get("image_id", int), item.text("question"))
    if not seen:
        raise DataError(path, "no 'questions' list in this file", field="questions")
    return table, subtype


def read_vqa(questions: str | Path, annotations: str | Path, *,
             image_template: str | None = None) -> Iterator[VQAExample]:
    """Yield the VQA examples of a questions + annotations pair, joined by question id."""
    questions, annotations = Path(questions), Path(annotations)
    table, subtype = _read_questions(questions)
    template = image_template or COCO_TEMPLATE
    if "{subtype}" in template and subtype is None:
        raise DataError(questions, "no 'data_subtype' to build image paths from; pass an image template",
                        field="data_subtype")
    stream = JsonStream(annotations)
    done: set[int] = set()
    for _key, i, value in stream.entries({"annotations"}):
        if i is None:
            continue
        item = Item(value, annotations, f"annotations[{i}]", stream.line)
        qid = item.get("question_id", int)
        if qid not in table:
            problem = "duplicate annotation for question id" if qid in done else "unknown question id"
            raise item.error(f"{problem} {qid} (not in {questions.name})", "question_id")
        image_id, question = table.pop(qid)
        done.add(qid)
        if item.get("image_id", int) != image_id:
            raise item.error(f"image id {item.value['image_id']} differs from the question's {image_id}",
                             "image_id")
        answers = item.texts("answers", key="answer")
        answer = item.text("multiple_choice_answer", optional=True) or most_frequent(answers)
        qtype = item.text("question_type", optional=True) or derived_question_type(question)
        path = item.relpath(template.format(subtype=subtype, image_id=image_id), "image_id")
        atype = item.text("answer_type", optional=True)  # VQAv2: yes/no, number or other
        yield VQAExample(str(qid), path, question, answers, answer, qtype, atype)
    if not done and not table:
        raise DataError(annotations, "no 'annotations' list in this file", field="annotations")
    if table:
        first = next(iter(table))
        raise DataError(annotations, f"{len(table)} question(s) of {questions.name} have no annotation "
                                     f"(first: question id {first})")
