"""The end of a run: the fine-tuned model in ``<output_dir>/final`` with its card, and the curves PNG."""

from __future__ import annotations

from pathlib import Path

from symdpo.data.manifest import read_manifest
from symdpo.models import card
from symdpo.train import sharding
from symdpo.train.objective import Objective
from symdpo.train.setup import Setup
from symdpo.train.tracking import plot_curves


def save_final(s: Setup, objective: Objective) -> Path | None:
    """Write the fine-tuned model (trainable-only over its base; merged and full with LoRA) and the PNG."""
    acc, out = s.accelerator, Path(s.cfg.output_dir)
    acc.wait_for_everyone()
    if sharding.is_sharded(s.lmm.module):
        sharding.unshard_for_save(s.lmm.module, main=acc.is_main_process)  # collective: every process
    with sharding.gathered(acc, s.lmm.module):  # ZeRO-3: whole parameters on every process for the save
        if not acc.is_main_process:
            return None
        final = out / "final"
        s.lmm.save_finetune(final)  # trained rows and adapters merged; trainable weights over the base
        card.write_card(final, base=s.lmm.source or s.cfg.model.name, family=s.lmm.family,
                        train_config=s.cfg.model_dump(mode="json"), manifest=read_manifest(s.cfg.data.path))
    if s.cfg.logging.plot:
        plot_curves(out / "metrics.jsonl", out / "curves.png", objective.plot_keys)
    return final
