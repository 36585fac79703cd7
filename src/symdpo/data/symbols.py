"""The SymDPO preference builder (our reading of arXiv 2411.11909; the paper's code is not public).

Recipe, per query (image, question, answer) of a VQA training set, queries in seeded random order:
1. Context: k demonstrations, k uniform in [k_min, k_max], asking the same question (else the same question
   type), covering >= 2 distinct answers, >= 1 with the query's answer, no image twice (query's included),
   in random order.
2. Kind: with probability ``icl_fraction`` an ordinary context (answers shown in words: chosen = the query's
   answer, rejected = another demonstration's answer, type ``wrong_answer``); otherwise a symbol context.
3. Symbols: each distinct demonstration answer gets a distinct symbol drawn from the vocabulary (built-in
   pseudo-words + user list, minus every answer string and question word of the source).
4. Pairs: chosen = the symbol of the query's answer. Rejected, by type (drawn by ``rejected_weights``, or one
   pair per type with ``pairs_per_query="all"``): ``text`` = the query's answer in words (the model ignored
   the context); ``wrong_symbol`` = the symbol a textual shortcut picks: the last demonstration's when it
   differs, else the most frequent other answer's (latest on ties), or a random other one (``random``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import numpy as np

from symdpo.data.contexts import ContextSampler, int_array
from symdpo.data.errors import DataError
from symdpo.data.options import SymbolOptions
from symdpo.data.pool import VQAPool
from symdpo.data.records import PreferenceRecord
from symdpo.data.vocab import SymbolVocabulary

RECIPE = __doc__


def shortcut_answer(demo_answers: list[int], query_answer: int, rng: random.Random | None = None) -> int:
    """Return the wrong answer a text-only shortcut would give: the last demo's, else the most frequent."""
    others = [a for a in demo_answers if a != query_answer]
    if rng is not None:
        return rng.choice(list(dict.fromkeys(others)))
    if demo_answers[-1] != query_answer:
        return demo_answers[-1]
    counts = Counter(others)
    best = max(counts.values())
    return next(a for a in reversed(others) if counts[a] == best)


def _too_few_symbols(usable: int, opts: SymbolOptions) -> ValueError:
    """Return the error of a vocabulary smaller than a context's demonstrations, naming the symbols file if any."""
    message = f"only {usable} usable symbols for up to {opts.k_max} demonstrations"
    if opts.symbols_file is None:
        return ValueError(message)
    builtin = "" if opts.builtin_symbols else ", use the built-in ones too (drop --no-builtin-symbols)"
    return DataError(opts.symbols_file, f"{message} (this --symbols-file's symbols, less the words of the source's "
                                        f"answers and questions); add symbols to it{builtin} or lower --k-max")


class SymbolBuilder:
    """Yields SymDPO preference records from a VQA pool; ``counts`` tallies what it made and skipped."""

    def __init__(self, pool: VQAPool, vocab: SymbolVocabulary, opts: SymbolOptions, seed: int, *,
                 counts: Counter[str] | None = None, features: np.ndarray | None = None) -> None:
        if len(vocab.symbols) < opts.k_max:
            raise _too_few_symbols(len(vocab.symbols), opts)
        self.pool, self.vocab, self.opts = pool, vocab.symbols, opts
        self.rng = random.Random(seed)
        self.sampler = ContextSampler(pool, opts.k_min, opts.k_max, features=features)  # features: RICES
        # array.array columns: scalar reads give plain ints, ~10x faster than numpy scalars in this loop
        self.image, self.question, self.answer = (int_array(c) for c in (pool.image, pool.question, pool.answer))
        self.types = [t for t, w in opts.rejected_weights.items() if w > 0]
        self.weights = [opts.rejected_weights[t] for t in self.types]
        self.counts: Counter[str] = counts if counts is not None else Counter()

    def query_order(self) -> list[int]:
        """Return all pool items in seeded random order."""
        order = list(range(len(self.pool)))
        self.rng.shuffle(order)
        return order

    def context(self, query: int) -> tuple[list[int], dict[str, str]] | None:
        """Return (demonstration items, answer -> symbol map) for a symbol context, or None (counted)."""
        found = self.sampler.sample(self.rng, query)
        if found is None:
            self.counts["skipped_no_context"] += 1
            return None
        level, demos = found
        self.counts[f"context_{level}"] += 1
        distinct = dict.fromkeys(self.pool.answers[self.answer[d]] for d in demos)  # order of appearance
        return demos, dict(zip(distinct, self.rng.sample(self.vocab, len(distinct)), strict=True))

    def records(self) -> Iterator[PreferenceRecord]:
        """Yield the preference records, one query after another."""
        pool, rng, opts, answer = self.pool, self.rng, self.opts, self.answer
        for q in self.query_order():
            found = self.context(q)
            if found is None:
                continue
            demos, symbols = found
            kind = "icl" if rng.random() < opts.icl_fraction else "symbol"
            demo_answers = [answer[d] for d in demos]
            wrong = shortcut_answer(demo_answers, answer[q], rng if opts.wrong_symbol == "random" else None)
            if kind == "icl":
                symbols, types = {}, ["wrong_answer"]
            elif opts.pairs_per_query == "all":
                types = self.types
            else:
                types = rng.choices(self.types, self.weights)
            for rtype in types:
                yield self._record(q, demos, symbols, kind, rtype, pool.answers[wrong])

    def _record(self, q: int, demos: list[int], symbols: dict[str, str], kind: str, rtype: str,
                wrong: str) -> PreferenceRecord:
        """Return one validated preference record."""
        pool, names = self.pool, self.pool.answers
        answer = names[self.answer[q]]
        shown = symbols.__getitem__ if symbols else str
        context = [{"image": i, "question": pool.questions[self.question[d]], "answer": shown(names[self.answer[d]]),
                    "original_answer": names[self.answer[d]]} for i, d in enumerate(demos)]
        self.counts[f"kind_{kind}"] += 1
        self.counts[f"rejected_{rtype}"] += 1
        # one validation call for the whole nested record (pydantic-core), then our invariants
        return PreferenceRecord.model_validate({
            "id": f"{pool.source}:{pool.ids[q]}:{rtype}", "source": pool.source,
            "images": [pool.images[self.image[d]] for d in [*demos, q]], "context": context,
            "query": {"image": len(demos), "question": pool.questions[self.question[q]], "answer": answer,
                      "answers": pool.answers_of(q)},
            "kind": kind, "chosen": shown(answer), "rejected": answer if rtype == "text" else shown(wrong),
            "rejected_type": rtype, "symbols": symbols})
