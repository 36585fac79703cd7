"""Post-processing of generated text, as OpenFlamingo's evaluation does it.

Sources: ``open_flamingo/eval/coco_metric.py::postprocess_captioning_generation`` plus the ``.replace('"', "")``
in ``evaluate.py::evaluate_captioning``; ``open_flamingo/eval/vqa_metric.py::postprocess_vqa_generation``;
``open_flamingo/eval/ok_vqa_utils.py::postprocess_ok_vqa_generation`` (stemming: see ``okvqa_stem``).
No whitespace is stripped here, as in the reference: the metrics do that.
"""

from __future__ import annotations

import re

# The model may run on into a new demonstration; cut at the first word that starts one.
_VQA_STOP = re.compile("Question|Answer|Short")


def postprocess_caption(text: str) -> str:
    """Return the caption cut before any "Output" and with every double quote removed."""
    return text.split("Output", 1)[0].replace('"', "")


def postprocess_vqa(text: str) -> str:
    """Return the answer cut before "Question"/"Answer"/"Short", then before the first ", "."""
    answer = _VQA_STOP.split(text, maxsplit=1)[0]
    return answer.split(", ", 1)[0]


def postprocess_okvqa(text: str) -> str:
    """Return the VQA-postprocessed answer stemmed as the OK-VQA v1.1 answers are."""
    from symdpo.eval.okvqa_stem import okvqa_stem

    return okvqa_stem(postprocess_vqa(text))
