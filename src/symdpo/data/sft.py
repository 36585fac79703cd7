"""SFT sequences: ordinary interleaved ICL (captions, VQA) with random demonstrations, and symbol sequences.

VQA: with probability ``sft_symbol_fraction`` a symbol context (as in ``symbols.py``) whose target is the
chosen symbol (with ``symbol_images="unrelated"`` its images are swapped for random images of the pool, so
the symbol can only be copied from the text); with probability ``copy_fraction`` (drawn first) a copy
sequence: one demonstration showing 6-14 random symbol-vocabulary words and a target that repeats them, in
the caption template (text copying, from which a tiny LM learns induction heads; its images play no part);
otherwise k random demonstrations (OpenFlamingo's evaluation protocol) with the query's answer as target.
Captions: k random demonstrations showing their first caption (as OpenFlamingo's eval does), target = one of
the query's captions, drawn at random.
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
                    symbol_fraction: float, counts: Counter[str], *,
                    symbol_images: str = "matching", copy_fraction: float = 0.0) -> Iterator[SFTRecord]:
    """Yield VQA SFT records (kinds 'vqa', 'symbol' and 'copy') over the pool in seeded random order."""
    sym = SymbolBuilder(pool, vocab, opts, seed, counts=counts)
    rng, names, image = sym.rng, pool.answers, sym.image
    for q in sym.query_order():
        if copy_fraction and rng.random() < copy_fraction:
            yield copy_record(pool, vocab.symbols, image, q, rng, counts)
            continue
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
        items = [*demos, q]  # whose images are shown
        if kind == "symbol" and symbol_images == "unrelated":
            items = random_demos(rng, image, -1, len(items))  # distinct random images (-1: no image to avoid)
        yield SFTRecord(id=f"{pool.source}:{pool.ids[q]}:{kind}", source=pool.source, kind=kind,
                        images=[pool.images[image[d]] for d in items], context=context,
                        query=Query(image=len(demos), question=pool.questions[sym.question[q]],
                                    answer=names[sym.answer[q]], answers=pool.answers_of(q)),
                        target=target)


def copy_record(pool: VQAPool, words: Sequence[str], image, q: int, rng: random.Random,
                counts: Counter[str]) -> SFTRecord:
    """Return a 'copy' record: a demonstration of 6-14 random words, then a query whose target repeats them."""
    text = " ".join(rng.choice(words) for _ in range(rng.randint(6, 14)))
    other = random_demos(rng, image, image[q], 1)
    counts["kind_copy"] += 1
    return SFTRecord(id=f"{pool.source}:{pool.ids[q]}:copy", source=pool.source, kind="copy",
                     images=[pool.images[image[i]] for i in [*other, q]],
                     context=[Demo(image=0, answer=text, original_answer=text)],
                     query=Query(image=1, answer=text, answers=[text]), target=text)


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
