"""TextVQA (``TextVQA_0.5.1_{train,val}.json``): ``{"data": [{"question_id", "image_id", "question",
"answers": [10 strings]}]}``; images are ``train_images/{image_id}.jpg`` (val images live there too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from symdpo.data.errors import DataError
from symdpo.data.sources.fields import Item
from symdpo.data.sources.jsonstream import JsonStream
from symdpo.data.sources.types import VQAExample, derived_question_type, most_frequent

TEXTVQA_TEMPLATE = "train_images/{image_id}.jpg"


def read_textvqa(path: str | Path, *, image_template: str | None = None) -> Iterator[VQAExample]:
    """Yield the TextVQA examples of one split file."""
    path = Path(path)
    stream = JsonStream(path)
    seen_ids: set[int] = set()
    found = False
    for _key, i, value in stream.entries({"data"}):
        if i is None:
            continue
        found = True
        item = Item(value, path, f"data[{i}]", stream.line)
        qid = item.get("question_id", int)
        if qid in seen_ids:
            raise item.error(f"duplicate question id {qid}", "question_id")
        seen_ids.add(qid)
        image_id = item.ident("image_id")
        question = item.text("question")
        answers = item.texts("answers")
        image = item.relpath((image_template or TEXTVQA_TEMPLATE).format(image_id=image_id), "image_id")
        yield VQAExample(str(qid), image, question, answers, most_frequent(answers),
                         derived_question_type(question))
    if not found:
        raise DataError(path, "no 'data' list in this file", field="data")
