"""Options of a data build (pydantic: a typo or an impossible value fails before any work)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from symdpo.data.sources.vlicl import vlicl_folder

# OpenFlamingo's RICES encoder (open_clip ViT-L-14 with OpenAI weights; transformers' copy), for every family
DEFAULT_RETRIEVAL_ENCODER = "openai/clip-vit-large-patch14"
Source = Literal["vqav2", "okvqa", "textvqa", "easyvqa", "coco", "flickr30k", "vlicl"]


class SymbolOptions(BaseModel):
    """How SymDPO contexts and pairs are made (see the recipe in ``symbols.py``)."""

    model_config = ConfigDict(extra="forbid")
    k_min: int = Field(2, ge=2)  # two demonstrations at least: one with the query's answer, one without
    k_max: int = Field(8, ge=2)
    icl_fraction: float = Field(0.2, ge=0.0, le=1.0)  # share of ordinary (text-answer) contexts
    rejected_weights: dict[Literal["text", "wrong_symbol"], float] = {"text": 1.0, "wrong_symbol": 1.0}
    pairs_per_query: Literal["one", "all"] = "one"  # one pair of a type drawn by weight, or one per type
    wrong_symbol: Literal["shortcut", "random"] = "shortcut"
    symbols_file: Path | None = None
    builtin_symbols: bool = True

    @model_validator(mode="after")
    def _check(self) -> SymbolOptions:
        if self.k_max < self.k_min:
            raise ValueError(f"--k-max ({self.k_max}) is below --k-min ({self.k_min})")
        if any(w < 0 for w in self.rejected_weights.values()) or not any(self.rejected_weights.values()):
            raise ValueError("--rejected weights must be non-negative with a positive total, e.g. text=1,wrong_symbol=1")
        if not self.builtin_symbols and self.symbols_file is None:
            raise ValueError("no symbols: keep --builtin-symbols or give --symbols-file")
        return self


class BuildOptions(BaseModel):
    """One ``symdpo data build``: which source, what to make, where to write it."""

    model_config = ConfigDict(extra="forbid")
    source: Source
    annotations: Path | None = None  # the annotation/caption/TextVQA file (unused for easyvqa)
    questions: Path | None = None  # VQAv2 / OK-VQA questions file
    image_root: Path | None = None  # easyvqa: the package's split folder when None
    image_template: str | None = None  # override e.g. "{subtype}/COCO_{subtype}_{image_id:012d}.jpg"
    hf_dataset: str | None = None  # a Hugging Face dataset in place of the JSON files (data/sources/hf.py)
    hf_split: str | None = None  # its split, for a dataset with several (hub ids, DatasetDict folders)
    split: str = "train"  # easyvqa split; Karpathy split(s), comma-separated ("train,restval")
    vlicl_data: Path | None = None  # the VL-ICL folder (its {task}/support.json and images; docs/vl-icl.md)
    vlicl_task: str | None = None  # VL-ICL's dataset folder (clevr) or symdpo's eval task name (vlicl-clevr)
    mode: Literal["preference", "sft"] = "preference"
    out: Path
    seed: int = 0
    max_records: int | None = Field(None, ge=1)
    question_regex: str | None = None  # keep only the examples whose question matches (VQA sources)
    symbols: SymbolOptions = SymbolOptions()
    sft_symbol_fraction: float = Field(0.5, ge=0.0, le=1.0)  # SFT on VQA: share of symbol sequences
    # SFT symbol sequences' images: "matching" (the SymDPO task), or "unrelated": random other images, so the
    # symbol can only be copied from the text (a Flamingo's pretraining: the images must not break the LM's copying)
    sft_symbol_images: Literal["matching", "unrelated"] = "matching"
    sft_copy_fraction: float = Field(0.0, ge=0.0, le=1.0)  # SFT on VQA: share of text-copying sequences
    # demonstrations of a context (from the query's question group): drawn at random, or RICES, the group's
    # images most similar to the query's by the retrieval encoder (most similar last)
    demos: Literal["random", "rices"] = "random"
    retrieval_encoder: str = DEFAULT_RETRIEVAL_ENCODER  # hub id, save_pretrained folder or tiny-clip
    feature_cache: Path | None = None  # folder keeping the retrieval embeddings between builds
    check_images: Literal["none", "header", "decode"] = "header"
    on_bad_image: Literal["error", "skip"] = "error"
    strict_extension: bool = True

    @field_validator("question_regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a regular expression: {e}") from None
        return v

    @field_validator("out")
    @classmethod
    def _out(cls, v: Path) -> Path:
        if v.is_dir():
            raise ValueError("is a directory: give a file path such as data/pairs.jsonl")
        if v.suffix.lower() not in (".jsonl", ".parquet"):
            raise ValueError("the output file must end in .jsonl or .parquet")
        return v

    @field_validator("vlicl_task")
    @classmethod
    def _vlicl_task(cls, v: str | None) -> str | None:
        return None if v is None else vlicl_folder(v)

    @field_validator("image_root", "vlicl_data")
    @classmethod
    def _root(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_dir():
            raise ValueError("is a file: give the folder the image paths are relative to" if v.exists()
                             else "folder not found")
        return v

    @model_validator(mode="after")
    def _check(self) -> BuildOptions:
        needs = {"vqav2": ("questions", "annotations"), "okvqa": ("questions", "annotations"),
                 "textvqa": ("annotations",), "coco": ("annotations",), "flickr30k": ("annotations",)}
        if self.source == "vlicl":
            self._check_vlicl()
        elif self.vlicl_data is not None or self.vlicl_task is not None:
            raise ValueError("--vlicl-data and --vlicl-task are for --source vlicl")
        for name in needs.get(self.source, ()) if self.hf_dataset is None else ():
            if getattr(self, name) is None:
                raise ValueError(f"source {self.source} needs --{name} (or --hf-dataset)")
        if self.source not in ("easyvqa", "vlicl") and self.image_root is None and self.hf_dataset is None:
            raise ValueError(f"source {self.source} needs --image-root")
        if self.demos == "rices" and self.mode != "preference":
            raise ValueError("--demos rices selects the demonstrations of preference contexts; drop it for --mode sft")
        if self.mode == "preference" and self.source in ("coco", "flickr30k"):
            raise ValueError("preference data needs a VQA source (captions have no question to symbolise)")
        return self

    def _check_vlicl(self) -> None:
        """Check the options of a VL-ICL build: its folder and task, and nothing that would read another split."""
        if self.vlicl_data is None or self.vlicl_task is None:
            raise ValueError("source vlicl needs --vlicl-data (the VL-ICL folder) and --vlicl-task (e.g. clevr)")
        if self.split not in ("train", "support"):  # "train": the option's default
            raise ValueError(f"source vlicl builds from {self.vlicl_task}/support.json only (query.json is the "
                             "evaluated set); drop --split")
        for name in ("hf_dataset", "annotations", "questions", "image_root", "image_template"):
            if getattr(self, name) is not None:
                raise ValueError(f"source vlicl reads --vlicl-data only; drop --{name.replace('_', '-')}")
