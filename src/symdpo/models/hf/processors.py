"""Processors of HF families, built from their parts (tokenizer + PIL image processor).

Built from parts rather than with ``AutoProcessor`` because the Qwen2-VL and SmolVLM processors also want a
video processor, whose class lookup fails without torchvision; images are all symdpo feeds them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from symdpo.models.hf.families import Family

log = logging.getLogger("symdpo.models.hf")


def processor_from_parts(family: Family, source: str | Path, *, trust_remote_code: bool = False, **extra):
    """Return the family's processor from the tokenizer and image processor stored at ``source`` (dir or hub id)."""
    import transformers as tf

    from symdpo.models.hf.tiny import image_only

    tok = tf.AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    images = getattr(tf, family.image_processor_class).from_pretrained(source)
    cls = getattr(tf, family.processor_class)
    if family.build_processor is not None:
        return family.build_processor(cls, images, tok, extra)
    return image_only(cls)(image_processor=images, tokenizer=tok, chat_template=getattr(tok, "chat_template", None))


def load_processor(family: Family, repo: str, hf_config, *, trust_remote_code: bool = False):
    """Return the processor of hub model ``repo``: its own AutoProcessor, else one built from its parts."""
    import transformers as tf

    try:
        return tf.AutoProcessor.from_pretrained(repo, trust_remote_code=trust_remote_code)
    except (AttributeError, ImportError, ValueError, OSError) as err:
        log.info("AutoProcessor(%s) failed (%s); building it from its tokenizer and image processor", repo, err)
    extra = family.processor_sizes(hf_config) if family.processor_sizes else {}
    return processor_from_parts(family, repo, trust_remote_code=trust_remote_code, **extra)
