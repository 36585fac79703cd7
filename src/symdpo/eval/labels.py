"""The demonstration-label conditions: what a demonstration shows in place of its answer or caption.

As chenxshuo/multimodal-icl's label modes (random strings, random words, no labels), plus SymDPO's symbols:

- ``random-strings``: each word replaced by random lower-case letters of the same length;
- ``random-words``: each word replaced by a random English word (``WORDS``, never one of the label's own);
- ``symbols``: each distinct label of the context replaced by its own pseudo-word from the SymDPO symbol
  vocabulary (``symdpo.data.vocab``), none of which is a word of the context's answers or questions;
- ``none``: an empty label, the cue still written.

Every choice comes from an RNG the caller seeds by (trial seed, item id), so a context is the same in every
process and every resumed run.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Sequence
from typing import Literal, get_args

from symdpo.data.vocab import SymbolVocabulary, words_of

DemoLabels = Literal["real", "random-words", "random-strings", "symbols", "none"]
LABEL_MODES: tuple[str, ...] = get_args(DemoLabels)

# Common English words of every kind, none a colour, shape, number or yes/no (the answers of the VQA sets)
WORDS: tuple[str, ...] = tuple("""
able above accept account across act add afraid after again age agree air allow almost alone along already
also always amount anger animal announce answer apple area argue arm army around arrive art ask attack aunt
autumn avoid awake baby back bag bake balance band bank base basket bath battle beach bean bear beat become
bed bee before begin behind believe bell belt bench berry bicycle bird birth bite blade blanket blood board
boat body boil bone book border borrow bottle bottom bowl box brain branch brave bread break breath brick
bridge bright bring brother brush bucket build burn bus butter button buy cabin cake call calm camera camp
candle cap captain car card care carpet carry castle cat catch cause chain chair chalk chance change cheap
cheese cherry chicken chief child church circus city claim class clean clever climb clock close cloth cloud
coast coat coffee coin cold collect comb comfort common cook copy corner cotton cough count country cousin
cover cow crash cream crime crowd crown cry cup curtain cushion cut dance danger dark daughter day deal
dear decide deep deer desert desk dinner dirt dish doctor dog dollar door dream dress drink drive drop drum
duck dust eagle ear early earth east easy eat edge egg elbow empty end enemy engine enjoy enter escape evening
event exam expect eye face fact fail fair fall family farm fast father fear feather feed fence field fight
film find finger fire fish flag flame floor flour flower fly fog fold follow food foot forest forget fork
fox frame friend frog fruit fuel funny garden gate gather gentle ghost gift girl glass glove goat
grain grass guest guitar habit hair hammer hand happy harbor hat hawk head health heart heat heavy hill
history hobby hole holiday honey hook hope horse hospital hotel hour house hunger hunt idea ink insect
island jacket jam jar jelly jewel job join joke journey judge juice jump jungle key kick king kitchen kite
knee knife knot ladder lake lamp land laugh lawn leaf learn leather lemon lesson letter library lift light
lion list listen loaf lock lunch machine magic map market meal meat melon metal milk minute mirror money
monkey month moon morning mother mountain mouse mouth music nail name needle nest net news night noise
north nose note ocean office oil onion owl page paint palace paper parcel park party pass path
peach pen pencil people pepper piano picture pie pig pillow pilot pipe planet plant plate pocket poem
police pond potato powder prince prison pump puzzle queen question quiet rabbit radio rain reason record
rice river road robot rock roof room root rope rose rule sail salt sand school science scissors sea season
seat seed shadow sheep shelf shell ship shirt shoe shop shore silk singer sister skirt sky sleep
smile smoke snake snow soap sock soup south space spoon spring stage stamp station stick stone storm story
street sugar summer sun supper swim table tail teacher tent thread throat thumb ticket tiger toast tongue
tool tooth towel tower town toy train tree truck tunnel turtle umbrella uncle valley vase village violin
voice wagon walk wall watch water wave weather wheel whistle window wing winter wire wolf wood wool
worm yard year zoo
""".split())


def random_string_label(label: str, rng: random.Random) -> str:
    """Return ``label`` with every word replaced by random lower-case letters of the same length."""
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in word) for word in label.split())


def random_word_label(label: str, rng: random.Random) -> str:
    """Return ``label`` with every word replaced by a random word of ``WORDS`` that is not one of its own."""
    own = words_of([label])
    choices = [w for w in WORDS if w not in own]
    return " ".join(rng.choice(choices) for _ in label.split() or [label])


def symbol_labels(labels: Sequence[str], forbidden_texts: Iterable[str], rng: random.Random) -> list[str]:
    """Return one symbol per label, the same symbol for the same label, none a word of ``forbidden_texts``."""
    distinct = list(dict.fromkeys(labels))
    vocab = SymbolVocabulary.for_source(distinct, forbidden_texts)
    if len(vocab.symbols) < len(distinct):
        raise ValueError(f"only {len(vocab.symbols)} symbols left for {len(distinct)} distinct labels")
    symbol_of = dict(zip(distinct, rng.sample(vocab.symbols, len(distinct)), strict=True))
    return [symbol_of[label] for label in labels]


def relabel(mode: str, labels: Sequence[str], rng: random.Random, *, context_texts: Iterable[str] = ()) -> list[str]:
    """Return the demonstrations' labels under label condition ``mode`` (``context_texts``: the questions)."""
    if mode == "real":
        return list(labels)
    if mode == "none":
        return [""] * len(labels)
    if mode == "random-strings":
        return [random_string_label(label, rng) for label in labels]
    if mode == "random-words":
        return [random_word_label(label, rng) for label in labels]
    if mode == "symbols":
        return symbol_labels(labels, context_texts, rng)
    raise ValueError(f"unknown demonstration-label condition {mode!r}; choose from {', '.join(LABEL_MODES)}")
