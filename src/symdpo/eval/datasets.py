"""Reading a task's split through the readers of ``symdpo.data.sources``, with the image folder it needs.

Data paths are one flat mapping (the CLI's options), the same for every task:

* ``annotations`` / ``questions``: the *evaluated* split's files (VQAv2 and OK-VQA need both, TextVQA the
  annotations, COCO and Flickr30K the Karpathy file that holds every split);
* ``train_annotations`` / ``train_questions``: the demonstration split's files (Karpathy: the same file
  unless given);
* ``image_root`` (and ``train_image_root``, defaulting to it) plus an optional ``image_template``;
* or ``hf_dataset`` / ``train_hf_dataset`` (with ``hf_split`` / ``train_hf_split``): a Hugging Face dataset
  (``symdpo.data.sources.hf``) in place of the JSON files, images embedded or relative to the image root.

easy-VQA needs none of them: it reads the installed ``easy_vqa`` package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symdpo.eval.errors import EvalError

# Karpathy split names of each role: demonstrations come from train(+restval), evaluation from test.
KARPATHY_SPLITS = {"coco": {"train": ("train", "restval"), "test": ("test",), "val": ("val",)},
                   "flickr30k": {"train": ("train",), "test": ("test",), "val": ("val",)}}


@dataclass(frozen=True)
class Split:
    """The records of one split and the folder their (relative) image paths start from."""

    records: Sequence[Any]
    image_root: Path


def _need(paths: Mapping[str, Any], key: str, task: str, what: str) -> Path:
    """Return ``paths[key]`` as a Path, or raise an EvalError naming the CLI option to give."""
    value = paths.get(key)
    if not value:
        raise EvalError(f"task {task} needs --{key.replace('_', '-')} ({what})")
    return Path(value)


def _keys(split: str, demo_split: str) -> tuple[str, str, str]:
    """Return the (annotations, questions, image root) keys of the demonstration or the evaluated split."""
    if split == demo_split:
        return "train_annotations", "train_questions", "train_image_root"
    return "annotations", "questions", "image_root"


def _root(paths: Mapping[str, Any], key: str, task: str) -> Path:
    """Return the image folder for ``key`` (a train root falls back to ``image_root``)."""
    if key == "train_image_root" and not paths.get(key):
        key = "image_root"
    return _need(paths, key, task, "the folder the annotation image paths are relative to")


def read_split(task: str, paths: Mapping[str, Any], split: str, *, demo_split: str = "train") -> Split:
    """Return the records of ``split`` of ``task``'s source, read with the data package's readers."""
    from symdpo.data import sources

    ann_key, q_key, root_key = _keys(split, demo_split)
    template = paths.get("image_template") or None
    hf_key = "train_hf_dataset" if split == demo_split else "hf_dataset"
    if paths.get(hf_key):  # a Hugging Face dataset (save_to_disk folder, parquet, or hub id)
        from symdpo.data.sources.hf import read_hf

        split_key = "train_hf_split" if split == demo_split else "hf_split"
        root = paths.get(root_key) or (paths.get("image_root") if split == demo_split else None)
        records, folder = read_hf(paths[hf_key], task, split=paths.get(split_key), image_root=root)
        return Split(records, folder)
    if task == "easyvqa":
        return Split(list(sources.read_easyvqa(split)), sources.easyvqa_root(split))
    # every missing option is reported before any (possibly large) file is read
    if task in ("vqav2", "okvqa"):
        questions = _need(paths, q_key, task, f"the {split} questions JSON")
        annotations = _need(paths, ann_key, task, f"the {split} annotations JSON")
        root = _root(paths, root_key, task)
        return Split(list(sources.read_vqa(questions, annotations, image_template=template)), root)
    if task == "textvqa":
        annotations = _need(paths, ann_key, task, f"the TextVQA {split} JSON")
        root = _root(paths, root_key, task)
        return Split(list(sources.read_textvqa(annotations, image_template=template)), root)
    if task in KARPATHY_SPLITS:
        karpathy = paths.get(ann_key) or paths.get("annotations")
        if not karpathy:
            raise EvalError(f"task {task} needs --annotations (the Karpathy dataset_{task}.json)")
        root = _root(paths, root_key, task)
        return Split(list(sources.read_karpathy(karpathy, splits=KARPATHY_SPLITS[task].get(split, (split,)))), root)
    raise EvalError(f"no data reader for task {task!r}")


def split_loader(task: str) -> Callable[[Mapping[str, Any], str], Split]:
    """Return a ``(paths, split) -> Split`` loader for a task read by ``read_split``."""
    return lambda paths, split: read_split(task, paths, split)
