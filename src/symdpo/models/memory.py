"""Model-state memory per GPU under each engine, by calculation: which preset fits on how many GPUs.

Counts come from the model built on the meta device (no weights, no download for the OpenFlamingo releases:
their architectures are in `flamingo.presets.RELEASE_SHAPES`), with the trainable set of the model's default
policy. Bytes per parameter follow the shipped launch configs (bf16 mixed precision): frozen weights in bf16
(2 bytes); trainable weights as fp32 masters (4), their fp32 gradients (4) and AdamW's two fp32 states (8).

* DDP: everything on every GPU.
* ZeRO-2 / FSDP shard-grad-op: weights on every GPU; gradients and optimiser states split over the GPUs.
* FSDP full shard / ZeRO-3: everything split; plus the largest sharded unit gathered whole in bf16 (twice:
  the one computing and the one prefetched).

Activations come on top and depend on the batch (`benchmarks/gpu.py` measures peak memory at OpenFlamingo-3B's
size); the table leaves them out, so "fits" compares model states with 80% of the GPU's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("ddp", "zero2", "fsdp")  # fsdp: FSDP full shard and ZeRO-3 (the same model states)
ENGINE_NAMES = {"ddp": "DDP", "zero2": "ZeRO-2 / shard-grad-op", "fsdp": "FSDP / ZeRO-3"}
FRACTION_FOR_STATES = 0.8  # of a GPU's memory; the rest for activations and the allocator


@dataclass(frozen=True)
class Counts:
    """Parameters of a model: all of them, the trainable ones, and the largest sharding unit."""

    total: int
    trainable: int
    largest_unit: int


def count(lmm) -> Counts:
    """Return the parameter counts of ``lmm`` as it is now (call ``prepare_training`` first for a policy)."""
    params = list(lmm.module.parameters())
    units = set(lmm.shard_units)
    sizes = [sum(p.numel() for p in m.parameters()) for m in lmm.module.modules() if type(m).__name__ in units]
    return Counts(sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad),
                  max(sizes, default=0))


def states_gib(c: Counts, gpus: int, engine: str) -> float:
    """Return the GiB of model states (weights, gradients, AdamW) one of ``gpus`` GPUs holds under ``engine``."""
    frozen = (c.total - c.trainable) * 2
    weights, grads, adam = c.trainable * 4, c.trainable * 4, c.trainable * 8
    if engine == "ddp":
        per_gpu = frozen + weights + grads + adam
    elif engine == "zero2":
        per_gpu = frozen + weights + (grads + adam) / gpus
    elif engine == "fsdp":
        per_gpu = (frozen + weights + grads + adam) / gpus + (2 * 2 * c.largest_unit if gpus > 1 else 0)
    else:
        raise ValueError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    return per_gpu / 2**30


def fewest_gpus(c: Counts, engine: str, gpu_gib: float, *, most: int = 64) -> int | None:
    """Return the fewest GPUs (1, 2, 4, ...) whose model states fit in ``FRACTION_FOR_STATES`` of ``gpu_gib``."""
    n = 1
    while n <= most:
        if states_gib(c, n, engine) <= FRACTION_FOR_STATES * gpu_gib:
            return n
        n *= 2
    return None


def meta_counts(name: str) -> Counts:
    """Return the counts of model ``name`` (preset or folder) under its default policy, built on the meta device."""
    from accelerate import init_empty_weights

    from symdpo.models.flamingo.presets import CLIP_L14_SHAPE, PRESETS, RELEASE_SHAPES
    from symdpo.models.interface import TrainingSpec

    with init_empty_weights(include_buffers=False):
        if name in RELEASE_SHAPES:
            from symdpo.models.flamingo.build import FlamingoConfig, build_flamingo

            lm, rows = RELEASE_SHAPES[name]
            fields = {k: v for k, v in PRESETS[name].flamingo.items() if k not in ("lm", "lm_format", "vision")}
            lmm = build_flamingo(FlamingoConfig(lm=lm, tokenizer="tiny", vision=CLIP_L14_SHAPE, **fields))
            lmm.model.lm.resize_token_embeddings(rows, mean_resizing=False)
        else:
            from symdpo.models.registry import load_model

            lmm = load_model(name)
    lmm.prepare_training(TrainingSpec())
    return count(lmm)
