"""Named HF-native models: hub presets and tiny offline ones, each naming its family and native format.

A preset's ``prompts`` names one of its family's formats (``Family.prompts``, in that family's module under
``families/``, where each format's source is said); base models are evaluated in OpenFlamingo's wording.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger("symdpo.models.hf")


@dataclass(frozen=True)
class HFPreset:
    name: str
    family: str
    repo: str | None  # hub id; None: a tiny random model built offline
    prompts: str  # the name of its native format among its family's (``Family.prompts``)
    description: str = ""
    tiny_variant: str | None = None  # the variant its family's tiny_model builds (e.g. smolvlm)
    options: dict = field(default_factory=dict)


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
        HFPreset("llava-onevision-0.5b", "llava_onevision", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava_onevision",
                 "LLaVA-OneVision-0.5B (Qwen2, OneVision stage)"),
        HFPreset("llava-onevision-7b", "llava_onevision", "llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava_onevision",
                 "LLaVA-OneVision-7B (Qwen2, OneVision stage)"),
        HFPreset("tiny-llava-onevision", "llava_onevision", None, "llava_onevision",
                 "tiny random LLaVA-OneVision; no download"),
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
