"""SFT sequences: ordinary interleaved ICL (captions, VQA) with random demonstrations, and symbol sequences.

VQA: with probability ``sft_symbol_fraction`` a symbol context (as in ``symbols.py``) whose target is the
chosen symbol, otherwise k random demonstrations (OpenFlamingo's evaluation protocol) with the query's
answer as target. Captions: k random demonstrations showing their first caption (as OpenFlamingo's eval
does), target = one of the query's captions, drawn at random.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence

from symdpo.data.demos import random_demos
from symdpo.data.options import SymbolOptions
from symdpo.data.pool import VQAPool
from symdpo.data.records import Demo, Query, SFTRecord
from symdpo.data.sources.types import CaptionExample
from symdpo.data.symbols import SymbolBuilder
from symdpo.data.vocab import SymbolVocabulary

SFT_RECIPE = __doc__


def vqa_sft_records(pool: VQAPool, vocab: SymbolVocabulary, opts: SymbolOptions, seed: int,
                    symbol_fraction: float, counts: Counter[str]) -> Iterator[SFTRecord]:
    """Yield VQA SFT records (kinds 'vqa' and 'symbol') over the pool in seeded random order."""
    sym = SymbolBuilder(pool, vocab, opts, seed, counts=counts)
    rng, names, image = sym.rng, pool.answers, sym.image
    for q in sym.query_order():
        found = sym.context(q) if rng.random() < symbol_fraction else None
        if found is not None:
            demos, symbols = found
            kind, target = "symbol", symbols[names[sym.answer[q]]]
        else:
            demos = random_demos(rng, image, image[q], rng.randint(opts.k_min, opts.k_max))
            kind, symbols, target = "vqa", {}, names[sym.answer[q]]
        shown = symbols.__getitem__ if symbols else str
        context = [Demo(image=i, question=pool.questions[sym.question[d]], answer=shown(names[sym.answer[d]]),
                        original_answer=names[sym.answer[d]]) for i, d in enumerate(demos)]
        counts[f"kind_{kind}"] += 1
        yield SFTRecord(id=f"{pool.source}:{pool.ids[q]}:{kind}", source=pool.source, kind=kind,
                        images=[pool.images[image[d]] for d in [*demos, q]], context=context,
                        query=Query(image=len(demos), question=pool.questions[sym.question[q]],
                                    answer=names[sym.answer[q]], answers=pool.answers_of(q)),
                        target=target)


def caption_sft_records(source: str, examples: Sequence[CaptionExample], opts: SymbolOptions, seed: int,
                        counts: Counter[str]) -> Iterator[SFTRecord]:
    """Yield caption SFT records (kind 'caption') over the examples in seeded random order."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    images = [ex.image for ex in examples]
    for q in order:
        ex = examples[q]
        demos = random_demos(rng, images, ex.image, rng.randint(opts.k_min, opts.k_max))
        target = rng.choice(ex.captions)
        counts["kind_caption"] += 1
        yield SFTRecord(
            id=f"{source}:{ex.id}:caption", source=source, kind="caption",
            images=[images[d] for d in [*demos, q]],
            context=[Demo(image=i, answer=examples[d].captions[0], original_answer=examples[d].captions[0])
                     for i, d in enumerate(demos)],
            query=Query(image=len(demos), answer=target, answers=list(ex.captions)), target=target)
