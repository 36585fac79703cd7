"""Recipe configs for `symdpo train sft|dpo`: one pydantic model per YAML section, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from symdpo.config import StrictModel
from symdpo.models.policies import Policy
from symdpo.models.prompts import Style


class ModelSection(StrictModel):
    """Which model to fine-tune and what of it trains (the model's family maps each option to its parameters)."""

    name: str  # a preset (tiny, openflamingo-3b-instruct, ...) or a directory written by save_pretrained
    # what trains: openflamingo (perceiver + gated cross-attention + the new tokens' rows; the SymDPO paper's),
    # connector (the vision-to-text layers only), lora (adapters on the LM), full (all but the vision tower);
    # unset: the family's default (its entry decides it: models/hf/families/; `symdpo model info` shows it)
    policy: Policy | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # storage dtype; bf16 compute is `precision`
    train_embeddings: bool = True  # OpenFlamingo: only the new tokens' rows change
    # Flamingo only (a family option, models/flamingo/training.py): how those rows train, "rows" (a parameter
    # of their own before a frozen matrix) or "mask" (OpenFlamingo's whole matrix, its gradient masked)
    new_token_rows: Literal["rows", "mask"] = "rows"
    # train the whole language model too (all rows of its embeddings): pretraining a tiny model from scratch
    train_lm: bool = False
    # start every cross-attention gate at this value instead of the model's (OpenFlamingo: 0, so that a fresh
    # model is the bare LM); a tiny model trained from scratch learns to look at images far sooner from 0.5.
    # Families without gates (Idefics3, Qwen-VL) refuse it
    gate_init: float | None = None
    train_vision: bool = False  # train the vision tower too (a tiny random one pretrained from scratch)
    # train the vision-to-text layers (perceiver and gated cross-attention, or the connector). False with
    # train_lm and gate_init 0: the bare LM learns alone, its images unseen (a tiny LM's text pretraining)
    train_xattn: bool = True
    gradient_checkpointing: bool = False


class LoraSection(StrictModel):
    """LoRA adapters on the language model (peft): the lora policy's, or beside another policy when enabled."""

    enabled: bool = False
    r: int = Field(8, ge=1)
    alpha: float = 16.0
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # unset: the family's attention projections (Flamingo: q_proj, v_proj; MPT: ["Wqkv"]; GPT-NeoX:
    # ["query_key_value"]; HF families: q/k/v/o_proj of the language model)
    target_modules: list[str] | None = None


class DataSection(StrictModel):
    """The training data and how it is batched."""

    # a record file written by `symdpo data build`, or TRL-layout preference data: a `symdpo data export
    # --format trl` folder, a save_to_disk folder, a folder of parquet files or one (data/conversations.py)
    path: Path
    image_root: Path | None = None  # default: the image_root in the data's manifest
    micro_batch_size: int = Field(1, ge=1)  # per process and forward
    # pack a micro-batch's preference pairs (context + chosen + rejected trees) into rows of at most this many
    # tokens, with no padding and block-diagonal attention (dpo.shared_prefix); unset: one pair per row
    max_tokens_per_batch: int | None = Field(None, ge=16)
    global_batch_size: int = Field(8, ge=1)  # per optimiser step, all processes together
    max_records: int | None = Field(None, ge=1)
    shuffle: bool = True
    # the prompt format the records are written in: native (the model's own, a chat format for instruct
    # models) or openflamingo (OpenFlamingo's wording); unset: the model's default, the one evaluation uses
    prompt_style: Style | None = None
    # held-out records scored every `logging.eval_every_steps` (logged as eval/...): a file of its own (its
    # manifest names its images), or a seeded share of `path` taken out of training
    eval_path: Path | None = None
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    eval_max_records: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_eval_source(self) -> DataSection:
        if self.eval_path is not None and self.eval_fraction:
            raise ValueError("give data.eval_path or data.eval_fraction, not both")
        return self


class OptimSection(StrictModel):
    """AdamW; which parameters take the weight decay is the model family's rule (Flamingo, IDEFICS: cross-attention only)."""

    lr: float = Field(5e-6, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.01, ge=0, le=1)  # of the total optimiser steps, sized from the data length
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)  # cap on optimiser steps (the schedule is sized by it then)


class DPOSection(StrictModel):
    """The preference loss and the reference model."""

    beta: float = Field(0.1, gt=0)
    loss_type: str = "sigmoid"  # a key of train/losses.LOSSES (DPO and its variants)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    sft_weight: float = Field(1.0, ge=0)  # the reference adds CE on the chosen answer with weight 1.0
    shared_prefix: bool = True  # one row per pair: context once, both answers under a tree mask
    reference: Literal["precomputed", "live"] = "precomputed"
    # live reference: share the policy's frozen tensors (vision, LM) instead of copying the whole model
    share_frozen: bool = True
    reference_batch_size: int = Field(8, ge=1)  # precompute pass

    @field_validator("loss_type", mode="before")
    @classmethod
    def _known_loss(cls, value):
        from symdpo.train.losses import LOSSES  # torch: imported when a config is checked, not at start-up

        if not isinstance(value, str) or value not in LOSSES:
            expected = " or ".join(", ".join(map(repr, LOSSES)).rsplit(", ", 1))
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value


class CheckpointSection(StrictModel):
    """Atomic, resumable checkpoints."""

    every_steps: int = Field(100, ge=1)
    keep_last: int = Field(2, ge=1)


class LoggingSection(StrictModel):
    """Where metrics go; JSONL always, the others when installed and asked for."""

    every_steps: int = Field(1, ge=1)
    eval_every_steps: int | None = Field(None, ge=1)  # default: at every checkpoint and at the end
    tensorboard: bool = True
    wandb: bool = False
    mlflow: bool = False
    progress: bool = True
    plot: bool = True


class TrainConfig(StrictModel):
    """A training run: `symdpo train dpo|sft --config FILE key=value ...`."""

    output_dir: Path
    seed: int = 0
    precision: Literal["no", "bf16", "fp16"] = "no"  # accelerate mixed precision (autocast)
    compile: bool = False  # torch.compile each repeated layer, dynamic shapes (models/compiled.py)
    model: ModelSection
    lora: LoraSection = LoraSection()
    data: DataSection
    optim: OptimSection = OptimSection()
    dpo: DPOSection = DPOSection()
    checkpoint: CheckpointSection = CheckpointSection()
    logging: LoggingSection = LoggingSection()

    @field_validator("precision", mode="before")
    @classmethod
    def _yaml_no(cls, value):
        # YAML 1.1 reads a bare `no` (precision=no on the command line) as False
        return "no" if value is False else value

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.data.global_batch_size % self.data.micro_batch_size:
            raise ValueError(f"data.global_batch_size ({self.data.global_batch_size}) is not a multiple of "
                             f"data.micro_batch_size ({self.data.micro_batch_size})")
        if self.data.max_tokens_per_batch and not self.dpo.shared_prefix:
            raise ValueError("data.max_tokens_per_batch packs shared-prefix trees: it needs dpo.shared_prefix=true")
        return self

    def training_spec(self):
        """Return the `TrainingSpec` the model turns into trainable parameters and optimiser groups."""
        from symdpo.models.interface import LoraSpec, TrainingSpec

        m, lora = self.model, self.lora
        spec_lora = None
        if lora.enabled or m.policy == "lora":
            spec_lora = LoraSpec(r=lora.r, alpha=lora.alpha, dropout=lora.dropout, target_modules=lora.target_modules)
        return TrainingSpec(policy=m.policy, weight_decay=self.optim.weight_decay, train_embeddings=m.train_embeddings,
                            train_lm=m.train_lm, train_vision=m.train_vision, train_vision_to_text=m.train_xattn,
                            gate_init=m.gate_init, lora=spec_lora, gradient_checkpointing=m.gradient_checkpointing,
                            family_options={"new_token_rows": m.new_token_rows})

    def accumulation_steps(self, world_size: int) -> int:
        """Return the micro-batches per process per optimiser step; raise if the batch does not divide."""
        per_step = self.data.micro_batch_size * world_size
        if self.data.global_batch_size % per_step:
            raise ValueError(f"data.global_batch_size {self.data.global_batch_size} is not a multiple of "
                             f"micro_batch_size x processes = {per_step}")
        return self.data.global_batch_size // per_step
