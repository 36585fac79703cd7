"""Each distinct image preprocessed and encoded once during evaluation (HF families whose images stack by rows).

Few-shot evaluation shows the same images many times: a demonstration pool of 2048 images serves thousands of
items, each query image comes back for every shot count, trial and diagnostic condition, and beam search hands
the model every image once per beam. Without a cache the processor resizes and patches every image slot and
the vision tower encodes it again.

`ImageCache` wraps two calls of the model's own code, keyed by image content (never by object identity):

* the processor's image processor: each distinct image is processed alone once; a call returns the stored
  rows of its images, stacked as the processor stacks them (tensors along rows, lists joined);
* the model's ``get_image_features``: each distinct image's patch rows (with its grid) is encoded once; a call
  returns the stored per-image outputs in the order asked, as the model splits them (``pooler_output`` and,
  for Qwen3-VL, ``deepstack_features``).

It serves families whose processor output and vision output stack images along rows (Qwen2-VL, Qwen2.5-VL,
Qwen3-VL: ``Family.image_cache``). The wrapping lasts as long as the ``with`` block and runs under no_grad
only: training never sees cached outputs. Memory is bounded (least recently used entries go first).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import torch
from PIL import Image

# both caches together; features get 3/4: a Qwen2-VL-7B 448-px image is 256 tokens x 3584 x 2 bytes (bf16)
# = 1.8 MB of embeddings, so about 850 such images stay cached
DEFAULT_MAX_BYTES = 2 * 1024**3


def image_key(image: Image.Image) -> str:
    """Return a content key of a PIL image (its mode, size and pixel bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def tensor_key(*tensors: torch.Tensor) -> str:
    """Return a content key of tensors (shape, dtype and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


class _LRU:
    """A least-recently-used store bounded by the bytes of its tensors."""

    def __init__(self, max_bytes: int) -> None:
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.max_bytes, self.bytes = max_bytes, 0

    def get(self, key: str) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: str, value: Any) -> None:
        self.items[key] = value
        self.bytes += _nbytes(value)
        while self.bytes > self.max_bytes and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.bytes -= _nbytes(old)


class CachedImageProcessor:
    """The processor's image processor, processing each distinct image once (everything else delegated)."""

    def __init__(self, inner: Any, store: _LRU, counts: dict[str, int]) -> None:
        self.inner, self.store, self.counts = inner, store, counts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, images=None, *args, **kwargs):
        from transformers import BatchFeature

        flat = images if isinstance(images, (list, tuple)) else [images]
        if args or not flat or not all(isinstance(im, Image.Image) for im in flat):
            return self.inner(images, *args, **kwargs)  # nested or non-PIL input: the processor's own path
        tensor_type = kwargs.pop("return_tensors", None)
        settings = repr(sorted(kwargs.items()))
        parts = []
        for im in flat:
            key = f"{image_key(im)}|{settings}"
            part = self.store.get(key)
            if part is None:
                part = dict(self.inner([im], return_tensors="pt", **kwargs))
                self.store.put(key, part)
                self.counts["processed"] += 1
            else:
                self.counts["processor_hits"] += 1
            parts.append(part)
        joined = {k: torch.cat([p[k] for p in parts]) if isinstance(parts[0][k], torch.Tensor)
                  else [x for p in parts for x in p[k]] for k in parts[0]}
        return BatchFeature(joined, tensor_type=tensor_type)


class ImageCache:
    """Context manager: the model's image processor and ``get_image_features`` memoised per image content."""

    def __init__(self, hf: torch.nn.Module, processor: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.processor = processor
        self.inner_model = hf.model  # the module whose forward calls get_image_features
        self.pixels, self.features = _LRU(max_bytes // 4), _LRU(max_bytes - max_bytes // 4)
        self.counts = {"processed": 0, "processor_hits": 0, "encoded": 0, "encoder_hits": 0}
        self._grad: torch.autograd.grad_mode.no_grad | None = None

    @property
    def encoded(self) -> int:
        """Images the vision tower encoded since the cache was made."""
        return self.counts["encoded"]

    @property
    def hits(self) -> int:
        """Image slots served from the vision cache since the cache was made."""
        return self.counts["encoder_hits"]

    def __enter__(self) -> ImageCache:
        self._grad = torch.no_grad()
        self._grad.__enter__()
        self._original = self.inner_model.get_image_features
        self._processor = self.processor.image_processor
        self.inner_model.get_image_features = self._image_features
        self.processor.image_processor = CachedImageProcessor(self._processor, self.pixels, self.counts)
        return self

    def __exit__(self, *exc) -> None:
        del self.inner_model.get_image_features  # the class's method again
        self.processor.image_processor = self._processor
        self._grad.__exit__(*exc)

    def _image_features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, **kwargs):
        """Return the model's per-image outputs of ``pixel_values``, encoding only images not seen before."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        rows = image_grid_thw.prod(-1).tolist()  # patch rows of each image, in order
        chunks = torch.split(pixel_values, rows)
        keys = [tensor_key(c, g) for c, g in zip(chunks, image_grid_thw, strict=True)]
        found = {k: self.features.get(k) for k in dict.fromkeys(keys)}
        todo = [k for k, v in found.items() if v is None]
        if todo:
            first = {k: keys.index(k) for k in todo}
            out = self._original(torch.cat([chunks[first[k]] for k in todo]),
                                 torch.stack([image_grid_thw[first[k]] for k in todo]), **kwargs)
            deep = getattr(out, "deepstack_features", None)
            for j, k in enumerate(todo):
                entry = {"pooler_output": out.pooler_output[j]}
                if deep is not None:
                    entry["deepstack_features"] = [layer[j] for layer in deep]
                found[k] = entry
                self.features.put(k, entry)
            self.counts["encoded"] += len(todo)
        self.counts["encoder_hits"] += len(keys) - len(todo)
        entries = [found[k] for k in keys]
        result = BaseModelOutputWithPooling(pooler_output=tuple(e["pooler_output"] for e in entries))
        if "deepstack_features" in entries[0]:
            layers = len(entries[0]["deepstack_features"])
            result["deepstack_features"] = [tuple(e["deepstack_features"][i] for e in entries) for i in range(layers)]
        return result
