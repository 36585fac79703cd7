"""The built-in symbols: meaningless pseudo-words, generated (not sampled) so that the list is identical on
every machine and Python version: two consonant-vowel syllables, like the paper's neutral examples ("rhondda",
"odwyer").

Below every layer: the data side's symbol vocabulary (``data.vocab``) starts from them, and the tiny models'
tokenizer (``models.tokenizers``) learns them so that a symbol is one or two tokens.
"""

from __future__ import annotations

_ONSETS = ("b", "br", "d", "dr", "f", "g", "gl", "k", "kl", "l", "m", "n", "p", "pl", "r", "s", "sk", "st",
           "t", "tr", "v", "z", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "n", "r", "l", "th", "nd", "sk", "m", "x")


def builtin_symbols(n: int = 2048) -> list[str]:
    """Return ``n`` distinct generated pseudo-words (fixed for every run and platform)."""
    parts = (_ONSETS, _VOWELS, _CODAS, _ONSETS, _VOWELS)
    total = 1
    for p in parts:
        total *= len(p)
    words: list[str] = []
    seen: set[str] = set()
    step = 104729  # a prime not dividing ``total``: i*step mod total visits every combination once
    i = 0
    while len(words) < n and i < total:
        j = (i * step + 12345) % total
        i += 1
        w = ""
        for p in parts:
            j, r = divmod(j, len(p))
            w += p[r]
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words
