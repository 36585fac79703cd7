"""COCO and Flickr30K captions in Karpathy's format (``dataset_coco.json``, ``dataset_flickr30k.json``):
``{"images": [{"filepath"?, "filename", "cocoid"? | "imgid", "split", "sentences": [{"raw"}]}]}``.
COCO images live at ``{filepath}/{filename}``; Flickr30K entries have no filepath."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from symdpo.data.errors import DataError
from symdpo.data.sources.fields import Item
from symdpo.data.sources.jsonstream import JsonStream
from symdpo.data.sources.types import CaptionExample


def read_karpathy(path: str | Path, *, splits: Iterable[str] | None = None) -> Iterator[CaptionExample]:
    """Yield the images (with captions) of a Karpathy split file, keeping only ``splits`` if given."""
    path = Path(path)
    wanted = set(splits) if splits is not None else None
    stream = JsonStream(path)
    seen_ids: set[str] = set()
    found = False
    for _key, i, value in stream.entries({"images"}):
        if i is None:
            continue
        found = True
        item = Item(value, path, f"images[{i}]", stream.line)
        id_field = "cocoid" if "cocoid" in item.value else "imgid"
        image_id = str(item.ident(id_field))
        if image_id in seen_ids:
            raise item.error(f"duplicate image id {image_id}", id_field)
        seen_ids.add(image_id)
        split = item.text("split")
        if wanted is not None and split not in wanted:
            continue
        folder = item.text("filepath", optional=True)
        filename = item.text("filename")
        image = item.relpath(f"{folder}/{filename}" if folder else filename, "filename")
        yield CaptionExample(image_id, image, item.texts("sentences", key="raw"), split)
    if not found:
        raise DataError(path, "no 'images' list in this file", field="images")


def read_coco(path: str | Path, *, splits: Iterable[str] | None = ("train", "restval")) -> Iterator[CaptionExample]:
    """Yield COCO caption examples (Karpathy train+restval by default)."""
    return read_karpathy(path, splits=splits)


def read_flickr30k(path: str | Path, *, splits: Iterable[str] | None = ("train",)) -> Iterator[CaptionExample]:
    """Yield Flickr30K caption examples (Karpathy train by default)."""
    return read_karpathy(path, splits=splits)
