"""Atomic, resumable training checkpoints: ``<output_dir>/checkpoints/step-00000042/``.

A checkpoint is written into a hidden ``.tmp-*`` folder and renamed to ``step-*`` only once every file in
it is complete and synced, so a ``step-*`` folder is always whole: a crash or kill -9 at any moment leaves
at worst a ``.tmp-*`` folder, which is never loaded and is removed at the next start. Old checkpoints are
renamed away before they are deleted, for the same reason.

Contents: the trainable weights (safetensors), optimiser and scheduler state, each process's RNG states,
and ``state.json`` (optimiser step = data position, since the batch order is a function of the step).
Sharded runs store them differently: FSDP2 writes the trainable weights and the optimiser as a
torch.distributed.checkpoint (``dcp/``, one file per process), which loads on any number of processes, sharded
or not (a 2-process FSDP checkpoint resumes on 1 process); DeepSpeed writes its engine state through
``accelerator.save_state`` (``engine/``).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from symdpo.atomic import apply_umask
from symdpo.train.sharding import is_sharded

STEP_DIR = re.compile(r"^step-(\d{8})$")


def checkpoint_root(output_dir: str | Path) -> Path:
    """Return the folder holding a run's checkpoints."""
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Return the complete checkpoints of a run, oldest first (temp folders are never listed)."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """Return the newest complete checkpoint, or None."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def remove_partial(output_dir: str | Path) -> None:
    """Delete temp folders left by an interrupted save or cleanup (main process only)."""
    root = checkpoint_root(output_dir)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-", ".trash-")):
                shutil.rmtree(p, ignore_errors=True)


def rng_state() -> dict:
    """Return this process's Python, NumPy and torch RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the RNG states returned by `rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def save_checkpoint(accelerator, output_dir: str | Path, step: int, *, model, optimizer, scheduler,
                    trainable: dict[str, torch.Tensor], state: dict, keep_last: int, sharded: bool) -> Path:
    """Write checkpoint ``step`` atomically on every process's behalf; return its final path."""
    root = checkpoint_root(output_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    if sharded and is_sharded(model):
        _save_dcp(tmp / DCP_DIR, model, optimizer, trainable)  # collective: every process writes its shards
    elif sharded:
        accelerator.save_state(str(tmp / "engine"))  # DeepSpeed; collective too
    elif accelerator.is_main_process:
        save_file({k: v.contiguous().cpu() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        # state.json last: its presence marks the folder complete even if a filesystem reorders renames
        (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
        apply_umask(tmp)  # safetensors writes 0600 whatever the umask
        _fsync_tree(tmp)
        if final.exists():  # the same step saved again (e.g. SIGTERM right after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(output_dir)[:-keep_last]:
            trash = root / f".trash-{old.name}"
            os.replace(old, trash)  # out of sight first, so a half-deleted checkpoint is never listed
            shutil.rmtree(trash, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


DCP_DIR = "dcp"


def _save_dcp(path: Path, model: torch.nn.Module, optimizer, trainable: dict[str, torch.Tensor]) -> None:
    """Write the trainable weights and the optimiser of a sharded model as a distributed checkpoint."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, optim = get_state_dict(model, optimizer)
    dcp.save({"model": {k: v for k, v in weights.items() if k in trainable}, "optim": optim}, checkpoint_id=str(path))


def _load_dcp(path: Path, model: torch.nn.Module, optimizer) -> None:
    """Load a distributed checkpoint into ``model`` and ``optimizer``, whatever their sharding now."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    weights, optim = get_state_dict(model, optimizer)  # the optimiser's state made if it has none yet
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    state = {"model": {k: v for k, v in weights.items() if k in trainable}, "optim": optim}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"],
                   options=StateDictOptions(strict=False))


def load_checkpoint(accelerator, path: Path, *, model, optimizer, scheduler, sharded: bool) -> dict:
    """Restore weights, optimiser, scheduler and this process's RNG from ``path``; return its state.json."""
    if (path / DCP_DIR).is_dir():
        _load_dcp(path / DCP_DIR, model, optimizer)  # written by FSDP on any number of processes
    elif sharded:
        accelerator.load_state(str(path / "engine"))
    else:
        weights = load_file(path / "trainable.safetensors")
        params = dict(model.named_parameters())
        missing = [k for k in weights if k not in params]
        if missing:
            raise ValueError(f"{path}: checkpoint weights do not fit the model: {missing[:5]}")
        with torch.no_grad():
            for k, v in weights.items():
                params[k].copy_(v)
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = path / f"rng-{accelerator.process_index}.pt"
    if rng.is_file():
        set_rng_state(torch.load(rng, weights_only=False))
    return json.loads((path / "state.json").read_text())
