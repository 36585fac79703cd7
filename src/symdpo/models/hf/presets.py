"""Named HF-native models and their native few-shot prompt formats (``models/prompts.py`` explains the fields).

``{image}`` is the model-agnostic image marker (the adapter writes the family's own image tokens there) and
``{end}`` the model-agnostic ``<|endofchunk|>`` (the adapter writes the family's marker).

* ``idefics`` (base): ``Question: {q} Answer:{a}`` / ``Caption:{c}`` — IDEFICS' pretraining is interleaved
  web text, like Flamingo's, so a plain cue works.
* ``idefics-instruct``: the model card's conversation, ``User:{image}{q}<end_of_utterance>\\nAssistant: {a}``
  ``<end_of_utterance>\\n`` (its documented example; IDEFICS v1 ships no template).
* ``idefics2`` / ``idefics3`` / ``smolvlm``: their chat template's text exactly (``User:`` / ``Assistant:`` roles,
  ``<end_of_utterance>\\n`` after every turn, a space after ``Assistant:``), with the BOS the template writes as
  the prefix (Idefics3 ``<|begin_of_text|>``, SmolVLM ``<|im_start|>``; Idefics2's tokenizer adds ``<s>``) and
  SmolVLM's VQA instruction "Give a very brief answer.".
* ``qwen2_vl`` (Qwen2-VL, Qwen2.5-VL instruct) and ``qwen3_vl``: ChatML roles, with Qwen's VQA instruction
  "Answer the question using a single word or phrase." (Qwen3-VL's template writes no default system turn).
* ``gemma3``: ``user`` / ``model`` turns closed by ``<end_of_turn>``, Qwen's instruction; its tokenizer writes
  the template's BOS.

Every instruct format is its chat template's text for the same turns (tests/models/hf/test_hf_chat_template.py
renders the published templates). A query ends with the space the template writes before an answer; the model
moves it to the answer (``models/prompts.py``). The demonstration boundary is the model-agnostic ``{end}``
marker, so a turn's own ``<|im_end|>`` / ``<end_of_utterance>`` never cuts a demonstration in two.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from symdpo.models.prompts import PromptFormat

log = logging.getLogger("symdpo.models.hf")

# Qwen2-VL/2.5-VL-Instruct: exactly what their chat template writes for the same turns (a system turn first,
# "<|im_end|>\n" after every turn; tests/models/hf/test_hf_chat_template.py compares the strings)
_QWEN_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
_QWEN_USER = "<|im_start|>user\n{image}"
_QWEN_VQA = _QWEN_USER + "{question}\nAnswer the question using a single word or phrase.<|im_end|>\n<|im_start|>assistant\n"
_QWEN_CAP = _QWEN_USER + "Describe the image in one sentence.<|im_end|>\n<|im_start|>assistant\n"
_GEMMA_USER = "<start_of_turn>user\n{image}"
_GEMMA_VQA = _GEMMA_USER + "{question}\nAnswer the question using a single word or phrase.<end_of_turn>\n<start_of_turn>model\n"
_GEMMA_CAP = _GEMMA_USER + "Describe the image in one sentence.<end_of_turn>\n<start_of_turn>model\n"

# IDEFICS-instruct, Idefics2/3, SmolVLM: "User:" (no space: the turn starts with its image), the turn closed by
# <end_of_utterance> and a newline, then "Assistant: " (the space the template writes before an answer)
_EU_VQA = "User:{image}{question}<end_of_utterance>\nAssistant: "
_EU_CAP = "User:{image}Describe the image briefly.<end_of_utterance>\nAssistant: "
_EU3_VQA = "User:{image}{question}\nGive a very brief answer.<end_of_utterance>\nAssistant: "
_EU3_CAP = "User:{image}Caption the image in one sentence.<end_of_utterance>\nAssistant: "

_PROMPTS: dict[str, dict[str, dict[str, str]]] = {
    "idefics": {
        "vqa": {"demo": "{image}Question: {question} Answer:{answer}{end}", "query": "{image}Question: {question} Answer:"},
        "caption": {"demo": "{image}Caption:{caption}{end}", "query": "{image}Caption:"},
    },
    "idefics-instruct": {
        "vqa": {"demo": _EU_VQA + "{answer}{end}\n", "query": _EU_VQA},
        "caption": {"demo": _EU_CAP + "{caption}{end}\n", "query": _EU_CAP},
    },
    "idefics2": {
        "vqa": {"demo": _EU3_VQA + "{answer}{end}\n", "query": _EU3_VQA},
        "caption": {"demo": _EU3_CAP + "{caption}{end}\n", "query": _EU3_CAP},
    },
    "idefics3": {
        "vqa": {"demo": _EU3_VQA + "{answer}{end}\n", "query": _EU3_VQA, "prefix": "<|begin_of_text|>"},
        "caption": {"demo": _EU3_CAP + "{caption}{end}\n", "query": _EU3_CAP, "prefix": "<|begin_of_text|>"},
    },
    "smolvlm": {
        "vqa": {"demo": _EU3_VQA + "{answer}{end}\n", "query": _EU3_VQA, "prefix": "<|im_start|>"},
        "caption": {"demo": _EU3_CAP + "{caption}{end}\n", "query": _EU3_CAP, "prefix": "<|im_start|>"},
    },
    "qwen2_vl": {
        "vqa": {"demo": _QWEN_VQA + "{answer}{end}\n", "query": _QWEN_VQA, "prefix": _QWEN_SYSTEM},
        "caption": {"demo": _QWEN_CAP + "{caption}{end}\n", "query": _QWEN_CAP, "prefix": _QWEN_SYSTEM},
    },
    # Gemma 3 (instruction-tuned): user / model turns, each closed by <end_of_turn> and a newline
    "gemma3": {
        "vqa": {"demo": _GEMMA_VQA + "{answer}{end}\n", "query": _GEMMA_VQA},
        "caption": {"demo": _GEMMA_CAP + "{caption}{end}\n", "query": _GEMMA_CAP},
    },
    # Qwen3-VL's template writes no default system turn
    "qwen3_vl": {
        "vqa": {"demo": _QWEN_VQA + "{answer}{end}\n", "query": _QWEN_VQA},
        "caption": {"demo": _QWEN_CAP + "{caption}{end}\n", "query": _QWEN_CAP},
    },
}


# the formats, with the demonstration separator left empty: each demonstration ends with its end marker
PROMPTS: dict[str, dict[str, PromptFormat]] = {
    name: {kind: PromptFormat(separator="", **f) for kind, f in kinds.items()} for name, kinds in _PROMPTS.items()
}
# base models are evaluated with OpenFlamingo's wording, as the SymDPO paper evaluated base IDEFICS
BASE_PROMPTS = ("idefics",)


@dataclass(frozen=True)
class HFPreset:
    name: str
    family: str
    repo: str | None  # hub id; None: a tiny random model built offline
    prompts: str  # key of PROMPTS (its native format)
    description: str = ""
    tiny_variant: str | None = None  # tiny.py model class variant
    options: dict = field(default_factory=dict)

    @property
    def prompt_style(self) -> str:
        """Return the style the preset is prompted in by default (OpenFlamingo's for base models)."""
        return "openflamingo" if self.prompts in BASE_PROMPTS else "native"


HF_PRESETS: dict[str, HFPreset] = {
    p.name: p
    for p in [
        HFPreset("idefics-9b", "idefics", "HuggingFaceM4/idefics-9b", "idefics", "IDEFICS-9B (the SymDPO paper's)"),
        HFPreset("idefics-9b-instruct", "idefics", "HuggingFaceM4/idefics-9b-instruct", "idefics-instruct",
                 "IDEFICS-9B-Instruct"),
        HFPreset("idefics-80b", "idefics", "HuggingFaceM4/idefics-80b", "idefics", "IDEFICS-80B"),
        HFPreset("idefics-80b-instruct", "idefics", "HuggingFaceM4/idefics-80b-instruct", "idefics-instruct",
                 "IDEFICS-80B-Instruct"),
        HFPreset("idefics3-8b", "idefics3", "HuggingFaceM4/Idefics3-8B-Llama3", "idefics3", "Idefics3-8B (Llama-3)"),
        HFPreset("smolvlm-256m", "idefics3", "HuggingFaceTB/SmolVLM-256M-Instruct", "smolvlm", "SmolVLM-256M-Instruct"),
        HFPreset("smolvlm-500m", "idefics3", "HuggingFaceTB/SmolVLM-500M-Instruct", "smolvlm", "SmolVLM-500M-Instruct"),
        HFPreset("smolvlm-2b", "idefics3", "HuggingFaceTB/SmolVLM-Instruct", "smolvlm", "SmolVLM-Instruct (2.2B)"),
        HFPreset("qwen2-vl-2b", "qwen2_vl", "Qwen/Qwen2-VL-2B-Instruct", "qwen2_vl", "Qwen2-VL-2B-Instruct"),
        HFPreset("qwen2-vl-7b", "qwen2_vl", "Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl", "Qwen2-VL-7B-Instruct"),
        HFPreset("qwen2.5-vl-3b", "qwen2_vl", "Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_vl", "Qwen2.5-VL-3B-Instruct"),
        HFPreset("qwen2.5-vl-7b", "qwen2_vl", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_vl", "Qwen2.5-VL-7B-Instruct"),
        HFPreset("idefics2-8b", "idefics2", "HuggingFaceM4/idefics2-8b", "idefics2", "Idefics2-8B (Mistral-7B)"),
        HFPreset("gemma3-4b", "gemma3", "google/gemma-3-4b-it", "gemma3", "Gemma 3 4B (instruction-tuned)"),
        HFPreset("gemma3-12b", "gemma3", "google/gemma-3-12b-it", "gemma3", "Gemma 3 12B (instruction-tuned)"),
        HFPreset("gemma3-27b", "gemma3", "google/gemma-3-27b-it", "gemma3", "Gemma 3 27B (instruction-tuned)"),
        HFPreset("qwen3-vl-2b", "qwen3_vl", "Qwen/Qwen3-VL-2B-Instruct", "qwen3_vl", "Qwen3-VL-2B-Instruct"),
        HFPreset("qwen3-vl-4b", "qwen3_vl", "Qwen/Qwen3-VL-4B-Instruct", "qwen3_vl", "Qwen3-VL-4B-Instruct"),
        HFPreset("qwen3-vl-8b", "qwen3_vl", "Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl", "Qwen3-VL-8B-Instruct"),
        HFPreset("tiny-idefics", "idefics", None, "idefics", "tiny random IDEFICS v1 (tests, CPU); no download"),
        HFPreset("tiny-idefics2", "idefics2", None, "idefics2", "tiny random Idefics2; no download"),
        HFPreset("tiny-gemma3", "gemma3", None, "gemma3", "tiny random Gemma 3; no download"),
        HFPreset("tiny-qwen3-vl", "qwen3_vl", None, "qwen3_vl", "tiny random Qwen3-VL; no download"),
        HFPreset("tiny-idefics3", "idefics3", None, "idefics3", "tiny random Idefics3; no download"),
        HFPreset("tiny-smolvlm", "idefics3", None, "smolvlm", "tiny random SmolVLM; no download", "smolvlm"),
        HFPreset("tiny-qwen2-vl", "qwen2_vl", None, "qwen2_vl", "tiny random Qwen2-VL; no download"),
        HFPreset("tiny-qwen2.5-vl", "qwen2_vl", None, "qwen2_vl", "tiny random Qwen2.5-VL; no download", "qwen2_5_vl"),
    ]
}

HUB_PREFIX = "hf:"  # "hf:<owner>/<name>": any supported hub model without a preset (family from its config)


def is_hf_name(name: str) -> bool:
    """Return True for an HF preset name or an ``hf:<hub id>`` reference."""
    return name in HF_PRESETS or name.startswith(HUB_PREFIX)


def trust_remote_code_allowed(flag: bool | None) -> bool:
    """Return the remote-code decision: ``flag``, else env SYMDPO_TRUST_REMOTE_CODE=1; warn when allowed."""
    allowed = flag if flag is not None else os.environ.get("SYMDPO_TRUST_REMOTE_CODE", "") == "1"
    if allowed:
        log.warning("trust_remote_code is on: Python code from the model's hub repository will run on this machine")
    return allowed
