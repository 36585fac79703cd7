"""Training policies: what of a model trains, one meaning for each name in every family (torch-free).

Which modules that is, each family's training module lists (flamingo/training.py, hf/training.py), and its
default is its own (`ModelInfo.default_policy`):
openflamingo — OpenFlamingo's set: the vision-to-text layers (perceiver / resampler and gated cross-attention)
               and the embedding rows of the tokens the family added; the SymDPO paper's setting.
connector    — the vision-to-text layers only (perceiver and cross-attention, projector, merger).
lora         — LoRA adapters (peft) on the language model's attention projections, and nothing else (Flamingo
               too); adapters beside another policy's set are that policy with `TrainingSpec.lora` set.
full         — everything but the vision tower.
"""

from __future__ import annotations

from typing import Literal

POLICY_MEANINGS: dict[str, str] = {
    "openflamingo": "vision-to-text layers + the added tokens' embedding rows",
    "connector": "vision-to-text layers only",
    "lora": "LoRA adapters on the LM's attention projections only",
    "full": "everything but the vision tower",
}
POLICIES: tuple[str, ...] = tuple(POLICY_MEANINGS)
Policy = Literal[POLICIES]  # the config's choices (pydantic reads the names from the tuple)
