"""Tokenizers that need no download: a byte-level BPE trained on the fly for the tiny models."""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

# A small fixed corpus: enough English for a BPE vocabulary that splits captions and VQA prompts sensibly.
_CORPUS = """Question: What color is the shape? Short answer: red. Question: What shape is in the image?
Short answer: circle. Output: a photo of a cat sitting on a table. Output: a man riding a horse on a beach.
Question: Is there a triangle? Short answer: yes. Question: How many people are there? Short answer: two.
green blue yellow gray black teal brown rectangle triangle circle yes no one two three four five
the a an of on in with and is are what which where how many does do this that there image photo picture"""


# easy-VQA's question words, so that the demo's questions are a few tokens each
_EASYVQA = """what color is the shape? what shape is in the image? does the image contain a circle? is there a
red shape in the image? is no triangle present? does the image not contain a rectangle? what is the blue
shape? what is the color of the circle? which shape is present? is a gray shape present? there not"""


def default_corpus() -> list[str]:
    """Return the built-in tokenizer corpus: captions/VQA prompts, easy-VQA words and the symbol vocabulary."""
    from symdpo.pseudowords import builtin_symbols

    # the symbols go in too, so that a SymDPO symbol is one or two tokens rather than a string of bytes
    symbols = builtin_symbols()
    return _CORPUS.split("\n") + _EASYVQA.split("\n") + [" ".join(symbols[i:i + 32]) for i in range(0, len(symbols), 32)]


def train_tiny_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Return a deterministic byte-level BPE tokenizer trained on ``corpus`` (the built-in one by default)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus) if corpus is not None else default_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
