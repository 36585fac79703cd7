"""VL-ICL Bench's six image-to-text tasks in the registry: data + demonstrations + prompt + scoring + decoding.

Protocol (docs/vl-icl.md; VL-ICL ``I2T_inference.py``, ``utils/ICL_utils.py``, ``utils/model_inference.py``,
``evals/eval.py``):

* data: ``{task}/query.json`` evaluated, ``{task}/support.json`` the demonstration pool (``vlicl_data``);
* n shots: n support records, or n per class (open_mi) / n couples (matching_mi); 0 shots is the query alone;
* the task description (``--task-description``) once at the start, then "\\n";
* each demonstration: its images, its question, its answer; the query the same without the answer;
* greedy decoding, at most 15 new tokens; scoring by ``vlicl_scoring``.

Prompt format: with the ``openflamingo`` style (and for OpenFlamingo, whose native format it is), VL-ICL's own
OpenFlamingo prompt, ``<image>{question}\\nAnswer: {answer}<|endofchunk|>``; with ``native``, the model
family's own VQA format, the description written after its system turn.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from symdpo.eval.datasets import Split
from symdpo.eval.prompts import VQA_TEMPLATE
from symdpo.eval.registry import GenerationParams, Task, register_task
from symdpo.eval.vlicl_data import FOLDERS, check_shots, read_vlicl, resolve_root, select_demos
from symdpo.eval.vlicl_scoring import vlicl_metric
from symdpo.models.prompts import PromptFormat

# VL-ICL's OpenFlamingo prompt (utils/model_inference.py): no separator between demonstrations
VLICL_OPENFLAMINGO = PromptFormat(demo="{image}{question}\nAnswer: {answer}{end}", query="{image}{question}\nAnswer:",
                                  separator="")
MAX_NEW_TOKENS = 15  # I2T_inference.py --max-new-tokens

# VL-ICL's task descriptions (utils/ICL_utils.py::get_task_instruction), verbatim, its typo ("phase") included
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "textocr": {
        "concise": "Answer with the text inside the red box.",
        "detailed": "An image will be provided where a red box is drawn around the text of interest. Answer with "
                    "the text inside the red box. Ensure that the transcription is precise, reflecting the exact "
                    "characters, including letters, numbers, symbols."},
    "operator_induction": {
        "concise": "Induce the mathematical operator and calculate the result.",
        "detailed": "The image contains two digit numbers and a ? representing the mathematical operator. Induce "
                    "the mathematical operator (addition, multiplication, minus) according to the results of the "
                    "in-context examples and calculate the result."},
    "operator_induction_interleaved": {
        "concise": "Induce the mathematical operator between the two images and calculate the result.",
        "detailed": "There are two input images, each representing a single digit number. Induce the mathematical "
                    "operator (addition, multiplication, minus) that is applied between the two images according "
                    "to the results of the in-context examples. Calculate the result for the new query images."},
    "open_mi": {
        "concise": "Answer the question with a single word or phase.",
        "detailed": "Induce the concept from the in-context examples. Answer the question with a single word or "
                    "phase."},
    "clevr": {
        "concise": "Find objects of the given type, induce what operation to use and calculate the result.",
        "detailed": "The image contains objects of different shapes, colors, sizes and materials. The question "
                    "describes the attribute and its value. You need to find all objects within the image that "
                    "satisfy the condition. You should induce what operation to use according to the results of "
                    "the in-context examples and then calculate the result."},
    "matching_mi": {
        "concise": "Determine the output for the new pair of images.",
        "detailed": "According to the few-shot examples, induce what operation to do and determine the output "
                    "for the two new images. Answer with \"yes\" or \"no\"."},
}


def description(task: str, level: str) -> str:
    """Return VL-ICL's task description of ``task`` at ``level`` (nothing: the empty string)."""
    return "" if level == "nothing" else DESCRIPTIONS[FOLDERS[task]][level]


def vlicl_format(task: str, model: Any | None, config: Any) -> PromptFormat:
    """Return the prompt format of a VL-ICL task for ``model``, the task description in its prefix."""
    text = description(task, config.task_description)
    native = None
    if model is not None:
        style = config.prompt_style or model.default_prompt_style
        own = model.prompt_format("vqa", "native")
        if style == "native" and own != VQA_TEMPLATE:  # OpenFlamingo's native format is VL-ICL's OpenFlamingo one
            native = own
    if native is None:  # VL-ICL writes the description and "\n" even when the description is empty
        return replace(VLICL_OPENFLAMINGO, prefix=text + "\n")
    return replace(native, prefix=native.prefix + (text + "\n" if text else ""))


def load(task: str, paths: dict[str, Any], split: str) -> Split:
    """Return a VL-ICL split of ``task`` with the data folder as its image root."""
    root = resolve_root(paths.get("vlicl_data"), task)
    if FOLDERS[task] == "open_mi" and split == "support":
        return Split([], root)  # open_mi's demonstrations come from each query's own support (support.json unused)
    return Split(read_vlicl(root, task, split), root)


def _task(name: str) -> Task:
    """Return the VL-ICL task ``name`` (query split evaluated, support split the demonstration pool)."""
    folder = FOLDERS[name]
    return Task(name, "vlicl", partial(load, name), VLICL_OPENFLAMINGO, str.strip, vlicl_metric(folder),
                GenerationParams(max_new_tokens=MAX_NEW_TOKENS, num_beams=1, length_penalty=1.0),
                eval_split="query", demo_split="support", select_demos=partial(select_demos, name),
                check_demos=partial(check_shots, name), prompt_for=partial(vlicl_format, name),
                metric_options=("vlicl_fixes",))  # fmt: skip


for _name in FOLDERS:
    register_task(_name)(partial(_task, _name))
