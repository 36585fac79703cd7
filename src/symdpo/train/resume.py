"""Whether a run may start or resume in its output_dir, and where it starts: step 0 or its latest checkpoint.

A fresh run refuses a folder holding checkpoints or a finished model; a --resume refuses a folder with nothing
to resume or a config that differs from the saved run's in anything but the sections that change neither the
data order nor the maths.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from symdpo.atomic import write_text
from symdpo.config import ConfigError
from symdpo.train import checkpointing as ckpt
from symdpo.train.config import TrainConfig

CONFIG_FILE = "train_config.json"  # the resolved config of the run, beside its checkpoints
# sections that may change between a run and its --resume: they change neither the data order nor the maths
RESUMABLE = ("logging", "checkpoint")
RESUMABLE_KEYS = ("data.micro_batch_size", "dpo.reference_batch_size", "output_dir")  # a run folder may move


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    """Return a nested dict as {'a.b.c': value}."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, object] = {}
    for k, v in node.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_changes(saved: dict, cfg: TrainConfig) -> list[str]:
    """Return the dotted keys whose value differs from the saved run's, except those a resume may change."""
    old, new = _flat(saved), _flat(cfg.model_dump(mode="json"))
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k) and k.split(".")[0] not in RESUMABLE
            and k not in RESUMABLE_KEYS]


def check_start(cfg: TrainConfig, resume: bool) -> None:
    """Refuse a start that would mix two runs, or a --resume that cannot resume (checked before any loading)."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out}: is a file; give a folder")
    latest = ckpt.latest_checkpoint(out)
    if not resume:
        if latest or (out / "final").exists():
            what = f"checkpoints ({latest.name})" if latest else "a finished run (final/)"
            raise ConfigError(f"output_dir {out} already holds {what}: pass --resume to continue it, or choose "
                              "another output_dir")
        return
    if not out.is_dir():
        raise ConfigError(f"--resume: output_dir {out} does not exist, so there is nothing to resume; drop "
                          "--resume to start a new run")
    if latest is None:
        raise ConfigError(f"--resume: output_dir {out} holds no complete checkpoint (the run stopped before its "
                          f"first save, every checkpoint.every_steps={cfg.checkpoint.every_steps}); drop --resume "
                          "and choose a new output_dir, or delete this one")
    saved = out / CONFIG_FILE
    if saved.is_file():
        changed = config_changes(json.loads(saved.read_text()), cfg)
        if changed:
            raise ConfigError(f"--resume: the config differs from the run in {out} in {', '.join(changed[:6])}"
                              f"{' ...' if len(changed) > 6 else ''}; resume with the run's config ({saved}) or "
                              "start a new run in another output_dir")


def start_step(accelerator, cfg: TrainConfig, resume: bool, *, model, optimizer, scheduler, sharded: bool) -> int:
    """Return the step to start from: 0 for a fresh run (its config recorded), the latest checkpoint's on --resume.

    Every process calls it, after ``check_start`` accepted the folder: the main process clears what an
    interrupted save left, then a resumed run loads its latest checkpoint into ``model``, ``optimizer`` and
    ``scheduler``.
    """
    out = Path(cfg.output_dir)
    if accelerator.is_main_process:
        ckpt.remove_partial(out)
    accelerator.wait_for_everyone()
    if not resume:
        if accelerator.is_main_process:
            shutil.rmtree(out / "tensorboard", ignore_errors=True)  # a fresh run's events, not piled on older ones
            write_text(out / CONFIG_FILE, json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
        return 0
    latest = ckpt.latest_checkpoint(out)
    if latest is None:
        return 0
    return ckpt.load_checkpoint(accelerator, latest, model=model, optimizer=optimizer, scheduler=scheduler,
                                sharded=sharded)["step"]
