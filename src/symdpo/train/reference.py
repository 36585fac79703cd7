"""The DPO reference model: log-probs precomputed in one pass and stored beside the data, or a live frozen copy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from symdpo.atomic import atomic_file
from symdpo.train.data import RecordDataset
from symdpo.train.sharding import has_weights


def fingerprint(dataset: RecordDataset, *, model: str, dtype: str, precision: str, lora: bool,
                policy: str | None = None) -> str:
    """Return a short hash of everything the reference log-probs depend on (data bytes, model, numerics)."""
    h = hashlib.sha256()
    for file in dataset.data_files():  # a record file, or the arrow/parquet files of TRL-layout data
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    from symdpo.models.prompts import OPENFLAMINGO

    prompts = {k: f.to_dict() for k, f in dataset.prompts.items()} if dataset.prompts != OPENFLAMINGO else None
    # the records' ids too: a held-out split of one file (data.eval_fraction) is its own reference set
    h.update("\n".join(r.id for r in dataset.records).encode())
    meta = {"model": model, "dtype": dtype, "precision": precision, "n": len(dataset), "lora": lora,
            **({"prompts": prompts} if prompts else {}),
            **({"policy": policy} if policy else {}),
            "image_root": str(dataset.image_root), "end": dataset.end_of_chunk, "version": 1}
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()[:16]


def reference_path(dataset: RecordDataset, fp: str) -> Path:
    """Return where the reference log-probs of ``dataset`` live: beside the data file."""
    return dataset.path.with_name(f"{dataset.path.name}.reflogps-{fp}.safetensors")


@torch.no_grad()
def pair_logps(lmm, dataset: RecordDataset, indices: list[int], *, batch_size: int, shared_prefix: bool,
               max_tokens_per_row: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (chosen, rejected) summed answer log-probs of records ``indices`` under ``lmm``, as float32 CPU."""
    chosen, rejected = [], []
    for start in range(0, len(indices), batch_size):
        ex = [dataset[i] for i in indices[start:start + batch_size]]
        c, r, _, _ = lmm.pair_logps([e.context for e in ex], [e.chosen for e in ex], [e.rejected for e in ex],
                                    shared_prefix=shared_prefix, max_tokens_per_row=max_tokens_per_row)
        chosen.append(c.float().cpu())
        rejected.append(r.float().cpu())
    if not chosen:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(chosen), torch.cat(rejected)


def precompute(accelerator, lmm, dataset: RecordDataset, path: Path, *, batch_size: int, shared_prefix: bool,
               max_tokens_per_row: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (N,) reference log-probs of chosen and rejected for every record, computing them once if absent.

    Each process scores a strided share; the main process writes the file atomically; all then read it.
    """
    from accelerate.utils import gather_object

    if not path.is_file():
        was_training = lmm.module.training
        lmm.train(False)  # the reference is the model in inference mode (no dropout)
        # processes holding weights split the records (under FSDP's RAM-efficient loading only the main
        # process has them before sharding)
        has = gather_object([has_weights(lmm.module)])
        workers = [i for i, h in enumerate(has) if h]
        rank = accelerator.process_index
        mine = list(range(workers.index(rank), len(dataset), len(workers))) if rank in workers else []
        with accelerator.autocast():
            c, r = pair_logps(lmm, dataset, mine, batch_size=batch_size, shared_prefix=shared_prefix,
                              max_tokens_per_row=max_tokens_per_row)
        lmm.train(was_training)
        shares = gather_object([(mine, c.tolist(), r.tolist())])
        if accelerator.is_main_process:
            chosen, rejected = torch.zeros(len(dataset)), torch.zeros(len(dataset))
            for idx, cs, rs in shares:
                chosen[idx], rejected[idx] = torch.tensor(cs), torch.tensor(rs)
            ids = hashlib.sha256("\n".join(r.id for r in dataset.records).encode()).hexdigest()
            with atomic_file(path) as tmp:
                save_file({"chosen": chosen, "rejected": rejected}, tmp, metadata={"ids_sha256": ids})
        accelerator.wait_for_everyone()
    stored = load_file(path)
    if stored["chosen"].shape[0] != len(dataset):
        raise ValueError(f"{path}: {stored['chosen'].shape[0]} reference log-probs for {len(dataset)} records")
    return stored["chosen"], stored["rejected"]
