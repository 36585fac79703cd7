"""Readers for the standard on-disk dataset formats; each returns ``VQAExample`` or ``CaptionExample``."""

from symdpo.data.sources.easyvqa import easyvqa_root, read_easyvqa
from symdpo.data.sources.karpathy import read_coco, read_flickr30k, read_karpathy
from symdpo.data.sources.textvqa import read_textvqa
from symdpo.data.sources.types import CaptionExample, VQAExample
from symdpo.data.sources.vqa import read_vqa

VQA_SOURCES = ("vqav2", "okvqa", "textvqa", "easyvqa")
CAPTION_SOURCES = ("coco", "flickr30k")

__all__ = ["CAPTION_SOURCES", "VQA_SOURCES", "CaptionExample", "VQAExample", "easyvqa_root", "read_coco",
           "read_easyvqa", "read_flickr30k", "read_karpathy", "read_textvqa", "read_vqa"]
