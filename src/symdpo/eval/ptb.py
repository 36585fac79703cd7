"""A pure-Python stand-in for Stanford's PTBTokenizer as pycocoevalcap runs it (``-preserveLines -lowerCase``).

CIDEr is computed on PTB tokens. The real tokenizer needs Java; where there is none this module gives the
same tokens on ordinary captions. It mimics, after lower-casing:

* clitics split off: ``don't`` -> ``do n't``, ``can't`` -> ``ca n't``, ``man's`` -> ``man 's`` (also
  ``'m 're 've 'll 'd``);
* ``, ; : ? !`` and ``... --`` split off, except inside numbers (``50,000``, ``3:00``, ``1.5``); a run such
  as ``?!`` stays one token, as in PTB;
* a word-final period split off unless the word is an abbreviation (``u.s.``, ``p.m.``, ``mr.``);
* quotes become separate tokens; ``$ % # &`` are split off and kept;
* brackets become ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` and are **kept**: pycocoevalcap removes the
  upper-case ``-LRB-`` forms, but ``-lowerCase`` has already lower-cased them (a quirk we reproduce).

Then, as pycocoevalcap does, tokens in its ``PUNCTUATIONS`` list are dropped. Known differences from PTB:
its full abbreviation list, Unicode normalisation, and rare constructs (URLs, emoticons, ``cannot``).
"""

from __future__ import annotations

import re

# Same list as pycocoevalcap/tokenizer/ptbtokenizer.py (copied so this module works without it).
PTB_PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
# A small part of PTB's abbreviation list: words whose final period is kept.
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "mt", "vs", "etc", "inc", "co", "corp", "ltd", "no"]
)
_BRACKET = re.compile(r"[(){}\[\]]")
_SUBSTITUTIONS = [
    (re.compile(r'"'), lambda m: " '' "),
    (re.compile(r"(?<=\w)(n't)\b"), lambda m: f" {m.group(1)} "),
    (re.compile(r"(?<=\w)('s|'m|'re|'ve|'ll|'d)\b"), lambda m: f" {m.group(1)} "),
    # an apostrophe at a word edge that does not start a clitic is a quote mark ("o'clock" stays whole)
    (re.compile(r"(?<!\w)'(?!(?:s|m|re|ve|ll|d)\b)|(?<=\w)'(?!\w)"), lambda m: " ' "),
    (re.compile(r"\.\.\.|--|[?!]+|[$%#&;]"), lambda m: f" {m.group(0)} "),
    # "," and ":" separate words, but not the digits of "50,000" or "3:00"
    (re.compile(r"(?<!\d)[,:]|[,:](?!\d)"), lambda m: f" {m.group(0)} "),
]
_ABBREV_WITH_DOTS = re.compile(r"(?:[a-z]\.){2,}", re.IGNORECASE)


def _split_final_period(token: str) -> list[str]:
    """Return ``token`` with a sentence-style final period split off, abbreviations left whole."""
    if not token.endswith(".") or token == "." or token == "...":
        return [token]
    stem = token[:-1]
    if _ABBREV_WITH_DOTS.fullmatch(token) or stem.lower() in _ABBREVIATIONS:
        return [token]
    return [stem, "."]


def ptb_split(text: str, *, convert_brackets: bool = True) -> list[str]:
    """Return the PTB-style tokens of ``text`` (case kept, punctuation kept as tokens)."""
    text = text.replace("\n", " ")
    # PTB writes brackets as -LRB- etc.; NLTK's word_tokenize (convert_brackets=False) keeps them as they are.
    text = _BRACKET.sub(lambda m: f" {_BRACKETS[m.group(0)] if convert_brackets else m.group(0)} ", text)
    for pattern, repl in _SUBSTITUTIONS:
        text = pattern.sub(repl, text)
    tokens: list[str] = []
    for token in text.split():
        tokens.extend(_split_final_period(token))
    return tokens


def ptb_tokenize_caption(text: str) -> str:
    """Return ``text`` lower-cased, PTB-tokenised and without PTB punctuation tokens, joined by spaces."""
    return " ".join(t for t in ptb_split(text.lower()) if t not in PTB_PUNCTUATIONS)
