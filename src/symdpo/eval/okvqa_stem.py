"""OK-VQA answer stemming, an offline stand-in for OpenFlamingo's ``OKVQAStemmer`` (open_flamingo/eval/ok_vqa_utils.py).

The reference tokenises with ``nltk.word_tokenize``, tags with ``nltk.pos_tag`` and then, per word: applies
the manual table; else lemmatises a word ending in "ing" as a verb with WordNet; else singularises a word
tagged NNS/NNPS with ``inflection.singularize``; and joins the words with spaces. The NLTK tokenizer, tagger
and WordNet all need corpus downloads that cannot be made offline, so here:

* tokens come from our PTB-style splitter (``symdpo.eval.ptb``), which follows the same Treebank rules on
  short answers (brackets are left as they are, as ``word_tokenize`` does);
* the verb lemma of an "-ing" word comes from ``lemminflect``'s dictionary (no guessing for unknown words,
  like WordNet's ``morphy``, which returns the word unchanged when no lemma is in the lexicon);
* "tagged NNS" becomes "a plural noun form in ``lemminflect``'s dictionary", or, for a word it does not
  know, a word of four letters or more ending in "s" but not "ss", "us" or "is" (what the perceptron
  tagger does with an unknown "-s" word in a short answer);
* singularisation is ``inflection.singularize``, the same function as the reference.

Differences remain for words whose tag depends on context (e.g. "runs" as a verb in a sentence) and for
"-ing" words WordNet lemmatises differently from lemminflect; answers are short, so these are rare.
"""

from __future__ import annotations

from functools import lru_cache

from symdpo.eval.okvqa_manual_matches import MANUAL_MATCHES
from symdpo.eval.ptb import ptb_split


@lru_cache(maxsize=65536)
def _verb_lemma(word: str) -> str:
    """Return the shortest dictionary verb lemma of ``word`` (NLTK's choice among WordNet lemmas), or ``word``."""
    from lemminflect import getAllLemmas

    lemmas = getAllLemmas(word.lower(), upos="VERB").get("VERB", ())
    return min(lemmas, key=len) if lemmas else word


@lru_cache(maxsize=65536)
def _is_plural_noun(word: str) -> bool:
    """Return whether ``word`` would be tagged NNS/NNPS (see the module docstring for the rule)."""
    from lemminflect import getAllLemmas

    lower = word.lower()
    all_lemmas = getAllLemmas(lower)
    if not all_lemmas:
        return len(lower) >= 4 and lower.endswith("s") and not lower.endswith(("ss", "us", "is"))
    return any(lemma != lower for lemma in all_lemmas.get("NOUN", ()))


def okvqa_stem(text: str) -> str:
    """Return ``text`` stemmed as the OK-VQA v1.1 answers are (manual table, -ing verbs, plural nouns)."""
    import inflection

    words = []
    for word in ptb_split(text, convert_brackets=False):
        if word in MANUAL_MATCHES:
            word = MANUAL_MATCHES[word]
        elif word.endswith("ing"):
            word = _verb_lemma(word)
        elif _is_plural_noun(word):
            word = inflection.singularize(word)
        words.append(word)
    return " ".join(words)
