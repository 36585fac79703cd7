"""The retrieval encoder of RICES / MMICES: a CLIP-like dual encoder, independent of the evaluated model.

OpenFlamingo's RICES ranks the query set by CLIP ViT-L/14 image embeddings whatever model is evaluated;
so do we, for every model family. ``load_retrieval_encoder(name)`` takes a hub id (default
``options.DEFAULT_RETRIEVAL_ENCODER``, CLIP ViT-L/14; any model with ``get_image_features`` /
``get_text_features``, e.g. ``openai/clip-vit-base-patch32``), a folder written by ``save_pretrained``, or ``tiny-clip``: a tiny random
CLIP built from a seeded config with a tokenizer trained on the fly (offline, deterministic; tests and the
CPU demo). Embeddings are L2-normalised, each distinct image (or text) encoded once per call, and kept in a
``FeatureCache`` keyed by (content hash, encoder id) when a cache folder is given.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from symdpo.data.demos import unit_rows
from symdpo.data.features import FeatureCache, content_hash
from symdpo.data.images import load_image
from symdpo.data.options import DEFAULT_RETRIEVAL_ENCODER

TINY_CLIP = "tiny-clip"
OPTION = "--retrieval-encoder"
_TINY_VERSION = "tiny-clip-v1"  # the cache id of tiny-clip: change it when its config or seed changes
_TINY_SIZE = 32  # pixels, as the other tiny models


def _pooled(out: Any) -> torch.Tensor:
    """Return the projected embeddings of a ``get_*_features`` call (a tensor, or an output's pooler_output)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class RetrievalEncoder:
    """A CLIP-like dual encoder: L2-normalised image and text embeddings in one space."""

    def __init__(self, name: str, model: Any, image_processor: Any, tokenizer: Any, *, device: str | torch.device = "cpu",
                 batch_size: int = 32) -> None:
        self.name = name  # the id features are cached under
        self.model = model.to(device).eval().requires_grad_(False)
        self.image_processor, self.tokenizer, self.batch_size = image_processor, tokenizer, batch_size
        text_config = getattr(model.config, "text_config", model.config)
        self.max_length = int(getattr(text_config, "max_position_embeddings", 77))

    @property
    def device(self) -> torch.device:
        """Return the device the encoder runs on."""
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return (N, D) float32 L2-normalised image embeddings of PIL images, preprocessed by the model's processor."""
        out = []
        dtype = next(self.model.parameters()).dtype
        for start in range(0, len(images), self.batch_size):
            batch = [img.convert("RGB") for img in images[start:start + self.batch_size]]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            feats = _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device, dtype)))
            out.append(feats.float().cpu().numpy())
        return unit_rows(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Return (N, D) float32 L2-normalised text embeddings (truncated to the text tower's length)."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            feats = _pooled(self.model.get_text_features(input_ids=enc["input_ids"].to(self.device),
                                                         attention_mask=enc["attention_mask"].to(self.device)))
            out.append(feats.float().cpu().numpy())
        return unit_rows(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)


@functools.cache
def _tiny_tokenizer() -> Any:
    """Return the tiny byte-level BPE tokenizer, ending every text with its end-of-text token (CLIP pools there)."""
    from tokenizers import processors

    from symdpo.models.tokenizers import train_tiny_tokenizer

    tok = train_tiny_tokenizer()
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {tok.eos_token}", special_tokens=[(tok.eos_token, tok.eos_token_id)])
    tok.pad_token = tok.eos_token  # CLIP's text tower pools at the first end-of-text token: padding after it is ignored
    return tok


def tiny_clip_parts() -> tuple[Any, Any, Any]:
    """Return (CLIPModel, image processor, tokenizer) of tiny-clip: random weights seeded by a fixed seed."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tok = _tiny_tokenizer()
    # initializer_factor 5: at CLIP's default init a random tower maps every image to nearly one direction
    # (cosines 0.95-0.9999, near-ties everywhere); 5x the init spreads them (cosines about -0.5..0.98)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, initializer_factor=5.0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=_TINY_SIZE, patch_size=8, initializer_factor=5.0),
        projection_dim=16, initializer_factor=5.0)
    with torch.random.fork_rng(devices=[]):  # the seed stays local: the caller's RNG stream is untouched
        torch.manual_seed(0)
        model = CLIPModel(config)
    processor = CLIPImageProcessorPil(size={"shortest_edge": _TINY_SIZE},
                                      crop_size={"height": _TINY_SIZE, "width": _TINY_SIZE})
    return model, processor, tok


def _usage(message: str) -> Exception:
    """Return a UsageError about ``--retrieval-encoder``."""
    from symdpo.errors import UsageError

    return UsageError(f"{OPTION} {message}")


def check_retrieval_encoder(name: str) -> str:
    """Return the cache id of retrieval encoder ``name`` once it is known to be loadable here (reads no weights).

    A missing folder is a UsageError; a hub id neither cached nor downloadable a HubUnavailableError, within
    seconds (``symdpo.models.hub.ensure_cached``). Both name ``--retrieval-encoder``.
    """
    if name == TINY_CLIP:
        return _TINY_VERSION
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _usage(f"{name}: a folder without config.json; give a CLIP-like model saved with save_pretrained, "
                         f"a hub id (e.g. {DEFAULT_RETRIEVAL_ENCODER}) or {TINY_CLIP}")
        return str(path.resolve())
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise _usage(f"{name}: no such folder and not a hub id; give a hub id (e.g. {DEFAULT_RETRIEVAL_ENCODER}), "
                     f"a folder saved with save_pretrained, or {TINY_CLIP}") from None
    from symdpo.models.errors import HubUnavailableError
    from symdpo.models.hub import ensure_cached

    try:
        ensure_cached(name, None)
    except HubUnavailableError as e:
        raise HubUnavailableError(f"{OPTION}: {e}") from None
    return name


def load_retrieval_encoder(name: str = DEFAULT_RETRIEVAL_ENCODER, *, device: str | torch.device = "cpu",
                           batch_size: int = 32) -> RetrievalEncoder:
    """Return the retrieval encoder ``name`` (hub id, save_pretrained folder or ``tiny-clip``) on ``device``."""
    cache_id = check_retrieval_encoder(name)
    if name == TINY_CLIP:
        return RetrievalEncoder(cache_id, *tiny_clip_parts(), device=device, batch_size=batch_size)
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    from symdpo.models.errors import HubUnavailableError
    from symdpo.models.hub import hub_access

    source = str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name
    try:
        with hub_access([(source, None)]):
            model = AutoModel.from_pretrained(source)
            processor = AutoImageProcessor.from_pretrained(source, backend="pil")  # no torchvision
            tokenizer = AutoTokenizer.from_pretrained(source)
    except HubUnavailableError as e:
        raise HubUnavailableError(f"{OPTION}: {e}") from None
    except (OSError, ValueError, KeyError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _usage(f"{name}: cannot be loaded as a CLIP-like model ({reason}); give e.g. "
                     f"{DEFAULT_RETRIEVAL_ENCODER} or {TINY_CLIP}") from None
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise _usage(f"{name}: a {type(model).__name__}, not a CLIP-like dual encoder (no get_image_features / "
                     f"get_text_features); give e.g. {DEFAULT_RETRIEVAL_ENCODER}")
    return RetrievalEncoder(cache_id, model, processor, tokenizer, device=device, batch_size=batch_size)


def image_cache(cache_dir: str | Path, encoder: RetrievalEncoder) -> FeatureCache:
    """Return the FeatureCache of ``encoder``'s image embeddings under ``cache_dir``."""
    return FeatureCache(cache_dir, f"retrieval-image:{encoder.name}")


def text_cache(cache_dir: str | Path, encoder: RetrievalEncoder) -> FeatureCache:
    """Return the FeatureCache of ``encoder``'s text embeddings under ``cache_dir`` (keyed by the text's SHA-256)."""
    return FeatureCache(cache_dir, f"retrieval-text:{encoder.name}")


def text_key(text: str) -> str:
    """Return the cache key of a text: the SHA-256 hex digest of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cached_rows(keys: Sequence[str], cache: FeatureCache | None, compute: Any, batch: int) -> dict[str, np.ndarray]:
    """Return {key: row} for the distinct ``keys``: cache hits read, the rest computed ``batch`` at a time."""
    rows: dict[str, np.ndarray] = {}
    missing = []
    for key in dict.fromkeys(keys):
        hit = cache.get(key) if cache is not None else None
        if hit is None:
            missing.append(key)
        else:
            rows[key] = hit.astype(np.float32, copy=False)
    for start in range(0, len(missing), batch):
        chunk = missing[start:start + batch]
        for key, row in zip(chunk, compute(chunk), strict=True):
            rows[key] = row
            if cache is not None:
                cache.put(key, row)
    return rows


def embed_images(encoder: RetrievalEncoder, root: str | Path, rels: Sequence[str], *,
                 cache_dir: str | Path | None = None) -> np.ndarray:
    """Return (N, D) embeddings of the images ``root/rel``: each distinct image encoded once, cache hits read."""
    if not rels:
        return np.zeros((0, 0), np.float32)
    cache = image_cache(cache_dir, encoder) if cache_dir else None
    # without a cache the path is the key (no need to hash); with one the content hash, shared across folders
    key_of = {rel: content_hash(Path(root) / rel) for rel in dict.fromkeys(rels)} if cache else {r: r for r in rels}
    rel_of = {k: r for r, k in key_of.items()}
    rows = _cached_rows([key_of[r] for r in rels], cache,
                        lambda keys: encoder.encode_images([load_image(root, rel_of[k]) for k in keys]),
                        encoder.batch_size)
    return np.stack([rows[key_of[r]] for r in rels])


def embed_texts(encoder: RetrievalEncoder, texts: Sequence[str], *, cache_dir: str | Path | None = None) -> np.ndarray:
    """Return (N, D) embeddings of ``texts``: each distinct text encoded once, cache hits read."""
    if not texts:
        return np.zeros((0, 0), np.float32)
    cache = text_cache(cache_dir, encoder) if cache_dir else None
    key_of = {t: text_key(t) for t in dict.fromkeys(texts)}
    text_of = {k: t for t, k in key_of.items()}
    rows = _cached_rows([key_of[t] for t in texts], cache,
                        lambda keys: encoder.encode_texts([text_of[k] for k in keys]), encoder.batch_size)
    return np.stack([rows[key_of[t]] for t in texts])


def record_text(record: Any) -> str:
    """Return the text MMICES compares for a demonstration: a VQA record's question, else its first caption."""
    question = getattr(record, "question", None)
    return question if question else record.captions[0].strip()
