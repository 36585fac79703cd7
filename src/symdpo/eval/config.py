"""The configuration of one evaluation run (pydantic: a bad value fails before any model is loaded)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from symdpo.data.options import DEFAULT_RETRIEVAL_ENCODER
from symdpo.eval.labels import DemoLabels
from symdpo.eval.vlicl_scoring import VLICLFix
from symdpo.models.prompts import Style

# The diagnostics matrix (docs/diagnostics.md): each value a condition of the same items and demonstrations.
# demo images: blank (a white picture), shuffled (among the demonstrations), ood (drawn from --ood-images),
# none (markers removed: text-only demonstrations); query image: blank, or none (marker removed)
DemoImages = Literal["real", "blank", "shuffled", "ood", "none"]
QueryImage = Literal["real", "blank", "none"]
DEMO_IMAGE_MODES: tuple[str, ...] = get_args(DemoImages)
QUERY_IMAGE_MODES: tuple[str, ...] = get_args(QueryImage)

# Fields that change which items are evaluated or what is predicted for them: a run directory holds
# predictions of one value of these only (shots, trials, tasks and conditions may grow between runs).
PREDICTION_FIELDS = ("model", "seed", "query_set_size", "num_samples", "demo_selection", "paths", "prompt_style",
                     "retrieval_encoder", "mmices_k", "ood_images", "task_description")


class EvalConfig(BaseModel):
    """Tasks x shots x trials x image conditions, with the OpenFlamingo protocol's defaults."""

    model_config = ConfigDict(extra="forbid")
    model: str
    tasks: list[str] = Field(min_length=1)
    shots: list[int] = [0, 4, 8, 16, 32]
    trials: int = Field(3, ge=1)  # the paper reports the mean and std of 3 trials
    seed: int = 42  # trial t uses seed + t (OpenFlamingo's default trial seed is 42)
    query_set_size: int = Field(2048, ge=1)  # demonstration pool drawn from train, as OpenFlamingo
    num_samples: int | None = Field(None, ge=1)  # evaluate a seeded random subset of this size
    # rices: the query set's images most similar to the query's (OpenFlamingo); rices-text: MMICES, the top
    # mmices_k (default 4 x shots) of those reordered by text similarity; both by the retrieval encoder's embeddings
    demo_selection: Literal["random", "rices", "rices-text"] = "random"
    retrieval_encoder: str = DEFAULT_RETRIEVAL_ENCODER  # hub id, save_pretrained folder or tiny-clip
    mmices_k: int | None = Field(None, ge=1)
    demo_images: list[DemoImages] = ["real"]
    query_image: list[QueryImage] = ["real"]
    demo_labels: list[DemoLabels] = ["real"]
    ood_images: str | None = None  # folder of out-of-distribution images for demo_images "ood"
    # product: every combination of the condition values; each: the all-real condition plus each altered
    # value alone (one field changed at a time, the diagnostics matrix's usual design)
    vary: Literal["product", "each"] = "product"
    batch_size: int = Field(8, ge=1)
    paths: dict[str, str] = {}
    feature_cache: str | None = None  # a folder for vision features kept between runs
    # native (the model family's own format, a chat format for instruct models) or openflamingo (OpenFlamingo's
    # eval wording); None: the model's default (native for chat/instruct models, openflamingo otherwise)
    prompt_style: Style | None = None
    # VL-ICL tasks: the task description written before the demonstrations (its --task_description; VL-ICL's
    # default is nothing, its README's examples use detailed), and the scoring fixes (none: the published rules)
    task_description: Literal["nothing", "concise", "detailed"] = "nothing"
    vlicl_fixes: list[VLICLFix] = []

    @field_validator("shots")
    @classmethod
    def _shots(cls, v: list[int]) -> list[int]:
        if not v or any(s < 0 for s in v):
            raise ValueError(f"shots must be a non-empty list of numbers >= 0, got {v}")
        return sorted(set(v))

    @field_validator("demo_images", "query_image", "demo_labels", "tasks")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one value")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _ood_needs_folder(self) -> EvalConfig:
        if "ood" in self.demo_images and not self.ood_images:
            raise ValueError("demo images 'ood' need --ood-images FOLDER: a folder of images from another source")
        return self

    def trial_seeds(self) -> list[int]:
        """Return the seed of each trial."""
        return [self.seed + t for t in range(self.trials)]

    def prediction_fingerprint(self) -> dict[str, Any]:
        """Return the fields that must match for earlier predictions in the run directory to be reused."""
        return {k: getattr(self, k) for k in PREDICTION_FIELDS}
