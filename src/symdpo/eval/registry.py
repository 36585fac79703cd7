"""A task and the registry of tasks: a dict and a decorator, as lm-evaluation-harness does it
(``lm_eval/api/registry.py``); the tasks themselves register in ``eval/tasks.py`` (OpenFlamingo's benchmarks)
and ``eval/vlicl_tasks.py`` (VL-ICL's), and ``tasks.get_task`` looks them up."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from symdpo.eval.datasets import Split
from symdpo.eval.prompts import PromptItem, PromptTemplate

Record = Any  # a symdpo.data.sources.types record (VQAExample, CaptionExample) or a symbol-probe item
Metric = Callable[[Mapping[str, str], Sequence[Record]], dict[str, Any]]


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters passed to ``InterleavedModel.generate``."""

    max_new_tokens: int
    num_beams: int = 3
    length_penalty: float = 0.0


# the protocol's decoding of each prompt kind (docs/openflamingo.md, "Few-shot evaluation protocol"); inference too
DECODING: dict[str, GenerationParams] = {"vqa": GenerationParams(max_new_tokens=5),
                                         "caption": GenerationParams(max_new_tokens=20)}


@dataclass(frozen=True)
class Task:
    """Everything needed to evaluate one benchmark, each part in one place."""

    name: str
    kind: Literal["caption", "vqa", "symbol_icl", "vlicl"]
    load: Callable[[Mapping[str, Any], str], Split]  # (paths config, split) -> records + image root
    template: PromptTemplate
    postprocess: Callable[[str], str]
    metric: Metric  # (predictions by record id, records) -> {"score": ..., ...}
    generation: GenerationParams
    eval_split: str
    demo_split: str = "train"
    demos_in_record: bool = False  # symbol probes carry their own demonstrations
    # a benchmark's own demonstration choice, (rng, demonstration pool, query, shots) -> demos in prompt order,
    # and its check that the shots can be shown, (shots, pool, evaluated records) -> None or an EvalError;
    # without them: random records of the pool with distinct images, OpenFlamingo's text-only 0-shot demos
    select_demos: Callable[[Any, Sequence[Record], Record, int], list[Record]] | None = None
    check_demos: Callable[[int, Sequence[Record], Sequence[Record]], None] | None = None
    # the prompt format from (model or None, EvalConfig); None: the model's format for the task's kind
    prompt_for: Callable[[Any, Any], PromptTemplate] | None = None
    metric_options: tuple[str, ...] = ()  # EvalConfig fields passed to the metric as keyword arguments

    def prompt_item(self, record: Record, *, demo: bool) -> PromptItem:
        """Return the prompt fields of ``record`` as a demonstration (with its answer) or as the query."""
        if self.kind == "caption":
            # The reference shows the first caption, stripped (evaluate.py: x["caption"].strip()).
            return PromptItem(record.image, {"caption": record.captions[0].strip()} if demo else {})
        fields = {"question": record.question}
        if demo and self.kind == "vlicl":
            fields["answer"] = str(record.answer)  # VL-ICL's format_answer: str() of its int answers
        elif demo:
            fields["answer"] = record.answers[0]  # first annotator answer, as the reference
        return PromptItem(record.image, fields)


TASKS: dict[str, Callable[[], Task]] = {}


def register_task(name: str) -> Callable[[Callable[[], Task]], Callable[[], Task]]:
    """Return a decorator that registers a task factory under ``name`` (a name can be taken only once)."""

    def decorate(factory: Callable[[], Task]) -> Callable[[], Task]:
        if name in TASKS:
            raise ValueError(f"task {name!r} is already registered")
        TASKS[name] = factory
        return factory

    return decorate
