"""A synthetic English-like corpus with planted relations, for training and checking word2vec offline.

``generate_corpus`` yields sentences (lower-case words separated by spaces, no
punctuation) from a template grammar. Four families of word pairs are planted, and
each relation is carried only by distributional context, never spelled out as a rule:

* gender (``family``): king/queen, man/woman, ... Both words of a pair share the
  pair's own topic words (throne, kingdom, reign for king/queen) and a domain word
  (palace, family, work, ...); the male word comes with he/his/him/himself, the
  female one with she/her/herself.
* countries: france/paris/french, ... A country comes with country, nation,
  government, border; its capital with city, mayor, streets, downtown; both with the
  nationality adjective and the continent, and often in the same sentence.
* plurals: cat/cats, ... The singular comes with a, one, this, every, is, has; the
  plural with many, two, these, all, are, have; both with the noun's own words
  (whiskers, purr) and its category (animal, vehicle, ...).
* comparatives: big/bigger, good/better, ... The base with very, quite, so; the
  comparative with than, much, even, far; both with the adjective's own nouns
  (elephant, whale) and its dimension (size, speed, ...).

It is not trivial: within a family the pairs are Zipf-frequent (the last pair
about 1/20 as common as the first), a third of the topic slots take a word of
another pair of the same group, 15% of pronouns and number markers are flipped,
template slots are filled with random general words, and a quarter of the
sentences are filler from a Zipf-distributed pseudo-word vocabulary. gensim's
skip-gram (dim 100, window 5, negative 5, min_count 5) on the default 2M tokens
gets about 47% of ``planted_analogies`` after 1 epoch, 80% after 2 and 91% after
5, with king - man + woman = queen throughout. ``planted_analogies`` gives the questions-words style test sections
and ``planted_similarities`` graded word pairs (a WordSim-style test) for the
vectors trained on it.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import random
from collections.abc import Iterator

import numpy as np

# ----------------------------------------------------------------------------- planted vocabulary

# (male, female, domain, topic words shared by the pair)
GENDER_PAIRS = [
    ("king", "queen", "royal", ("throne", "kingdom", "reign")),
    ("prince", "princess", "royal", ("castle", "heir", "carriage")),
    ("emperor", "empress", "royal", ("empire", "dynasty", "legion")),
    ("lord", "lady", "royal", ("manor", "estate", "hunt")),
    ("father", "mother", "family", ("parent", "cradle", "bedtime")),
    ("son", "daughter", "family", ("birthday", "homework", "allowance")),
    ("brother", "sister", "family", ("sibling", "twin", "bunk")),
    ("husband", "wife", "family", ("marriage", "wedding", "anniversary")),
    ("uncle", "aunt", "family", ("cousin", "holiday", "postcard")),
    ("grandfather", "grandmother", "family", ("grandchild", "pension", "armchair")),
    ("nephew", "niece", "family", ("christening", "toys", "sleepover")),
    ("man", "woman", "people", ("adult", "office", "commute")),
    ("boy", "girl", "people", ("school", "playground", "kite")),
    ("actor", "actress", "work", ("film", "stage", "audience")),
    ("waiter", "waitress", "work", ("restaurant", "menu", "tip")),
    ("monk", "nun", "work", ("monastery", "prayer", "abbey")),
    ("hero", "heroine", "work", ("legend", "quest", "villain")),
    ("steward", "stewardess", "work", ("flight", "cabin", "passengers")),
]
GENDER_DOMAINS = {
    "royal": ("palace", "court"),
    "family": ("family", "home"),
    "people": ("crowd", "town"),
    "work": ("job", "career"),
}
PRONOUNS = {  # subject, possessive, object, reflexive, title
    0: ("he", "his", "him", "himself", "mister"),
    1: ("she", "her", "her", "herself", "madam"),
}

# (country, capital, nationality adjective, continent)
COUNTRIES = [
    ("france", "paris", "french", "europe"),
    ("germany", "berlin", "german", "europe"),
    ("italy", "rome", "italian", "europe"),
    ("spain", "madrid", "spanish", "europe"),
    ("greece", "athens", "greek", "europe"),
    ("norway", "oslo", "norwegian", "europe"),
    ("sweden", "stockholm", "swedish", "europe"),
    ("poland", "warsaw", "polish", "europe"),
    ("portugal", "lisbon", "portuguese", "europe"),
    ("austria", "vienna", "austrian", "europe"),
    ("ireland", "dublin", "irish", "europe"),
    ("japan", "tokyo", "japanese", "asia"),
    ("china", "beijing", "chinese", "asia"),
    ("india", "delhi", "indian", "asia"),
    ("thailand", "bangkok", "thai", "asia"),
    ("iran", "tehran", "iranian", "asia"),
    ("egypt", "cairo", "egyptian", "africa"),
    ("kenya", "nairobi", "kenyan", "africa"),
    ("nigeria", "abuja", "nigerian", "africa"),
    ("morocco", "rabat", "moroccan", "africa"),
    ("canada", "ottawa", "canadian", "america"),
    ("peru", "lima", "peruvian", "america"),
    ("cuba", "havana", "cuban", "america"),
    ("chile", "santiago", "chilean", "america"),
]

# (singular, plural, category, the noun's own words)
NOUNS = [
    ("cat", "cats", "animal", ("whiskers", "purr")),
    ("dog", "dogs", "animal", ("leash", "bark")),
    ("horse", "horses", "animal", ("saddle", "gallop")),
    ("bird", "birds", "animal", ("feathers", "nest")),
    ("cow", "cows", "animal", ("pasture", "udder")),
    ("pig", "pigs", "animal", ("mud", "trough")),
    ("car", "cars", "vehicle", ("engine", "garage")),
    ("ship", "ships", "vehicle", ("harbor", "anchor")),
    ("boat", "boats", "vehicle", ("oar", "paddle")),
    ("truck", "trucks", "vehicle", ("cargo", "diesel")),
    ("tree", "trees", "nature", ("leaves", "branch")),
    ("flower", "flowers", "nature", ("petals", "bloom")),
    ("river", "rivers", "nature", ("current", "bridge")),
    ("mountain", "mountains", "nature", ("peak", "summit")),
    ("book", "books", "household", ("pages", "library")),
    ("table", "tables", "household", ("tablecloth", "chairs")),
    ("window", "windows", "household", ("glass", "curtain")),
    ("door", "doors", "household", ("lock", "hinge")),
    ("bed", "beds", "household", ("pillow", "mattress")),
    ("cup", "cups", "household", ("tea", "saucer")),
]
NOUN_CATEGORIES = {
    "animal": ("animal", "creature"),
    "vehicle": ("vehicle", "transport"),
    "nature": ("nature", "landscape"),
    "household": ("household", "room"),
}

# (base, comparative, dimension, the adjective's own nouns)
ADJECTIVES = [
    ("big", "bigger", "size", ("elephant", "whale")),
    ("small", "smaller", "size", ("ant", "pebble")),
    ("tall", "taller", "height", ("giraffe", "skyscraper")),
    ("short", "shorter", "length", ("pencil", "stub")),
    ("long", "longer", "length", ("rope", "snake")),
    ("fast", "faster", "speed", ("rocket", "cheetah")),
    ("slow", "slower", "speed", ("snail", "turtle")),
    ("hot", "hotter", "temperature", ("fire", "oven")),
    ("cold", "colder", "temperature", ("ice", "freezer")),
    ("warm", "warmer", "temperature", ("sweater", "sunshine")),
    ("good", "better", "quality", ("gift", "reward")),
    ("bad", "worse", "quality", ("storm", "accident")),
    ("strong", "stronger", "strength", ("iron", "muscle")),
    ("weak", "weaker", "strength", ("paper", "twig")),
    ("old", "older", "age", ("ruin", "antique")),
    ("young", "younger", "age", ("kitten", "puppy")),
    ("rich", "richer", "wealth", ("gold", "fortune")),
    ("poor", "poorer", "wealth", ("beggar", "debt")),
    ("deep", "deeper", "height", ("ocean", "canyon")),
    ("bright", "brighter", "light", ("lamp", "star")),
]

# ----------------------------------------------------------------------------- general vocabulary

_VERBED = (
    "visited",
    "saw",
    "liked",
    "found",
    "met",
    "helped",
    "called",
    "watched",
    "followed",
    "remembered",
    "praised",
    "described",
    "painted",
    "admired",
    "mentioned",
    "noticed",
)
_VERB = ("visit", "see", "find", "meet", "help", "call", "watch", "follow", "praise", "describe", "paint")
_ADJ = (
    "famous",
    "quiet",
    "lovely",
    "busy",
    "strange",
    "pleasant",
    "ordinary",
    "curious",
    "noisy",
    "calm",
    "modest",
    "proud",
    "clever",
    "lucky",
    "gentle",
    "silent",
)
_TIME = (
    ("yesterday",),
    ("today",),
    ("tomorrow",),
    ("last", "week"),
    ("in", "the", "morning"),
    ("every", "summer"),
    ("after", "lunch"),
    ("on", "sunday"),
    (),
)
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
_NUM_FILLER = 400

# difficulty: pairs are Zipf-frequent (weight 1 / (rank + 1) ** _PAIR_ZIPF within a family), a topic
# slot takes another pair's word of the same group with probability _TOPIC_MIX, and pronouns /
# number markers are flipped with probability _MARKER_NOISE.
_PAIR_ZIPF = 1.0
_TOPIC_MIX = 0.35
_MARKER_NOISE = 0.15
_FAMILY_WEIGHTS = (0.24, 0.19, 0.16, 0.16, 0.25)  # gender, country, noun, adjective, filler sentences

_SINGULAR_DET = ("a", "one", "this", "that", "every", "each")
_PLURAL_DET = ("many", "two", "three", "these", "those", "all", "several", "some")


def _planted_words() -> set[str]:
    words = set()
    for m, f, d, ids in GENDER_PAIRS:
        words |= {m, f, *ids, *GENDER_DOMAINS[d]}
    for c, k, a, cont in COUNTRIES:
        words |= {c, k, a, cont}
    for s, p, cat, ids in NOUNS:
        words |= {s, p, *ids, *NOUN_CATEGORIES[cat]}
    for b, r, dim, ids in ADJECTIVES:
        words |= {b, r, dim, *ids}
    return words


def _filler_words() -> list[str]:
    """400 pseudo-words (2-3 syllables) from a fixed generator, disjoint from every real word used here."""
    gen = random.Random(20130907)
    taken = _planted_words() | set(_VERBED) | set(_VERB) | set(_ADJ)
    out: list[str] = []
    while len(out) < _NUM_FILLER:
        w = "".join(gen.choice(_SYLLABLES) for _ in range(gen.choice((2, 2, 3))))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def planted_words() -> list[str]:
    """Every word of the planted relations (pairs, their topic words, domains, categories, dimensions), sorted."""
    return sorted(_planted_words())


# ----------------------------------------------------------------------------- sentence templates


class _Grammar:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.filler = _filler_words()
        zipf = list(itertools.accumulate(1.0 / (i + 2) for i in range(len(self.filler))))
        self.filler_cdf = [z / zipf[-1] for z in zipf]
        self.by_continent: dict[str, list[int]] = {}
        for i, (_, _, _, cont) in enumerate(COUNTRIES):
            self.by_continent.setdefault(cont, []).append(i)
        self.planted = planted_words()
        self.pair_cdf = list(
            itertools.accumulate(
                1.0 / (i + 1) ** _PAIR_ZIPF
                for i in range(max(len(GENDER_PAIRS), len(COUNTRIES), len(NOUNS), len(ADJECTIVES)))
            )
        )
        self.family_cdf = list(itertools.accumulate(_FAMILY_WEIGHTS))
        # same-group partners, for topic mixing
        self.peers = {}
        for name, table, g in (("gender", GENDER_PAIRS, 2), ("noun", NOUNS, 2), ("adjective", ADJECTIVES, 2)):
            self.peers[name] = [
                [j for j, row in enumerate(table) if row[g] == table[i][g] and j != i] or [i] for i in range(len(table))
            ]

    def pick(self, n: int) -> int:
        """Index of a pair among the first n, Zipf-weighted by position."""
        return bisect.bisect_left(self.pair_cdf, self.r.random() * self.pair_cdf[n - 1])

    def topic(self, name: str, table, i: int) -> str:
        """One of pair i's own words, or with probability _TOPIC_MIX one of a same-group pair's."""
        if self.r.random() < _TOPIC_MIX:
            i = self.c(self.peers[name][i])
        return self.c(table[i][3])

    def flip(self) -> bool:
        return self.r.random() < _MARKER_NOISE

    # slots
    def f(self) -> str:
        return self.filler[bisect.bisect_left(self.filler_cdf, self.r.random())]

    def c(self, seq):
        return self.r.choice(seq)

    def time(self) -> tuple[str, ...]:
        return self.c(_TIME)

    def clause(self) -> list[str]:
        """Optional filler tail: 'and <filler> <filler> ...' (30% of sentences)."""
        if self.r.random() < 0.3:
            return ["and"] + [self.f() for _ in range(self.r.randint(2, 4))]
        return []

    # families
    def gender(self) -> list[str]:
        r = self.r
        p = self.pick(len(GENDER_PAIRS))
        m, fe, dom, _ = GENDER_PAIRS[p]
        g = r.randint(0, 1)
        w = (m, fe)[g]
        he, his, him, himself, title = PRONOUNS[1 - g if self.flip() else g]
        i1, i2 = self.topic("gender", GENDER_PAIRS, p), self.topic("gender", GENDER_PAIRS, p)
        d = self.c(GENDER_DOMAINS[dom])
        k = r.randrange(8)
        if k == 0:
            s = ["the", w, "said", "that", he, "would", self.c(_VERB), "the", i1, *self.time()]
        elif k == 1:
            s = [he, "is", "the", w, "of", "the", i1, "and", his, i2, "is", self.c(_ADJ)]
        elif k == 2:
            s = ["the", d, w, self.c(_VERBED), his, i1, *self.time()]
        elif k == 3:
            s = ["everyone", "in", "the", d, "knew", "the", w, "because", he, self.c(_VERBED), "the", self.c(_ADJ), i1]
        elif k == 4:
            s = [his, "name", "was", title, self.f(), "and", he, "was", "a", self.c(_ADJ), w, "of", "the", i1]
        elif k == 5:
            s = ["the", w, "looked", "at", himself, "and", "then", he, self.c(_VERBED), "the", i1]
        elif k == 6:
            s = ["they", self.c(_VERBED), him, "because", "the", w, "loved", "the", i1, "and", "the", i2]
        else:  # the pair together
            a, b = (m, fe) if r.random() < 0.5 else (fe, m)
            s = ["the", a, "and", "the", b, "of", "the", d, self.c(_VERBED), "the", i1, "together"]
        return s + self.clause()

    def country(self) -> list[str]:
        r = self.r
        i = self.pick(len(COUNTRIES))
        c, k, a, cont = COUNTRIES[i]
        j = self.c(self.by_continent[cont]) if r.random() < 0.75 else r.randrange(len(COUNTRIES))
        c2, k2 = COUNTRIES[j][:2]
        n = r.randrange(12)
        if n == 0:
            s = [k, "is", "the", "capital", "of", c]
        elif n == 1:
            s = ["the", "city", "of", k, "is", "the", "largest", "city", "in", c]
        elif n == 2:
            s = [c, "is", "a", "country", "in", cont, "and", "its", "capital", "is", k]
        elif n == 3:
            s = ["the", a, "government", "of", c, self.c(_VERBED), "the", self.f(), *self.time()]
        elif n == 4:
            s = ["many", a, "people", "live", "in", c, "near", "the", "border"]
        elif n == 5:
            s = ["the", "mayor", "of", k, self.c(_VERBED), "the", "streets", "of", "the", "city", *self.time()]
        elif n == 6:
            s = [
                "we",
                "flew",
                "to",
                k,
                "and",
                "walked",
                "through",
                "the",
                self.c(_ADJ),
                "downtown",
                "of",
                "the",
                "city",
            ]
        elif n == 7:
            s = ["people", "in", c, "speak", a, "and", "the", "nation", "has", "a", "large", "population"]
        elif n == 8:
            s = ["the", "border", "between", c, "and", c2, "is", "long"]
        elif n == 9:
            s = [k, "and", k2, "are", self.c(_ADJ), "cities", "with", "busy", "streets"]
        elif n == 10:
            s = ["in", k, "the", a, "food", "is", self.c(_ADJ), "and", "the", "city", "never", "sleeps"]
        else:
            s = ["the", "president", "of", c, self.c(_VERBED), "the", "government", "of", c2, "in", cont]
        return s + self.clause()

    def noun(self) -> list[str]:
        r = self.r
        p = self.pick(len(NOUNS))
        sg, pl, cat, _ = NOUNS[p]
        i1, i2 = self.topic("noun", NOUNS, p), self.topic("noun", NOUNS, p)
        cw = self.c(NOUN_CATEGORIES[cat])
        plural = r.random() < 0.5
        n = r.randrange(7)
        if n == 6:  # both forms together
            s = ["one", sg, "and", self.c(("two", "three", "many")), pl, "were", "near", "the", i1]
        elif not plural:
            det = self.c(_PLURAL_DET if self.flip() else _SINGULAR_DET)
            s = [
                ["there", "is", "a", sg, "near", "the", i1],
                ["this", sg, "has", "a", i1, "and", "it", "is", self.c(_ADJ)],
                ["one", sg, "was", "sitting", "by", "the", i1, *self.time()],
                [det, sg, "needs", "a", i1, "and", "a", i2],
                ["my", sg, "is", "a", self.c(_ADJ), cw, "with", "a", i1],
                ["that", sg, "was", "very", self.c(_ADJ), *self.time()],
            ][n]
        else:
            det = self.c(_SINGULAR_DET if self.flip() else _PLURAL_DET)
            s = [
                ["there", "are", "many", pl, "near", "the", i1],
                ["these", pl, "have", i1, "and", "they", "are", self.c(_ADJ)],
                ["two", pl, "were", "sitting", "by", "the", i1, *self.time()],
                [det, pl, "need", i1, "and", i2],
                ["some", pl, "in", "the", cw, "are", self.c(_ADJ), "with", i1],
                ["those", pl, "were", "very", self.c(_ADJ), *self.time()],
            ][n]
        return s + self.clause()

    def adjective(self) -> list[str]:
        r = self.r
        p = self.pick(len(ADJECTIVES))
        b, c, dim, _ = ADJECTIVES[p]
        i1 = self.topic("adjective", ADJECTIVES, p)
        n = r.randrange(9)
        if n == 0:
            s = ["the", i1, "is", "very", b]
        elif n == 1:
            s = ["a", b, i1, self.c(_VERBED), "the", self.f(), *self.time()]
        elif n == 2:
            s = ["the", dim, "of", "the", i1, "is", "quite", b]
        elif n == 3:
            s = ["this", i1, "is", "so", b, "that", "everyone", self.c(_VERBED), "it"]
        elif n == 4:
            s = ["the", i1, "is", "much", c, "than", "the", self.f()]
        elif n == 5:
            s = ["the", i1, "became", "even", c, "than", "before"]
        elif n == 6:
            s = ["this", i1, "is", "far", c, "than", "that", "one", "in", dim]
        elif n == 7:
            s = ["nothing", "is", c, "than", "a", i1]
        else:  # both forms together
            s = ["the", i1, "was", b, "but", "now", "it", "is", c]
        return s + self.clause()

    def filler_sentence(self) -> list[str]:
        r = self.r
        s = [self.f() for _ in range(r.randint(5, 14))]
        if r.random() < 0.2:  # stray planted word
            s[r.randrange(len(s))] = self.c(self.planted)
        return s

    def sentence(self) -> list[str]:
        k = bisect.bisect_left(self.family_cdf, self.r.random() * self.family_cdf[-1])
        return (self.gender, self.country, self.noun, self.adjective, self.filler_sentence)[k]()

    def planted_sentence(self) -> list[str]:
        """A sentence of one of the four planted families (never a filler sentence), in their _FAMILY_WEIGHTS."""
        k = bisect.bisect_left(self.family_cdf, self.r.random() * self.family_cdf[3])
        return (self.gender, self.country, self.noun, self.adjective)[k]()


def generate_corpus(num_tokens: int = 2_000_000, seed: int = 0) -> Iterator[str]:
    """Sentences (space-separated lower-case words) until at least ``num_tokens`` tokens; deterministic given seed."""
    try:
        num_tokens = operator.index(num_tokens)
        seed = operator.index(seed)
    except TypeError:
        raise ValueError(
            f"generate_corpus: num_tokens and seed must be integers, got {num_tokens!r} and {seed!r}"
        ) from None
    if num_tokens < 1:
        raise ValueError(f"generate_corpus: num_tokens must be >= 1, got {num_tokens}")
    return _generate(num_tokens, seed)


def _generate(num_tokens: int, seed: int) -> Iterator[str]:
    grammar = _Grammar(seed)
    count = 0
    while count < num_tokens:
        s = grammar.sentence()
        count += len(s)
        yield " ".join(s)


# ----------------------------------------------------------------------------- a realistic vocabulary

ZIPF_TOKENS = 20_000_000  # generate_zipf_corpus's default size
ZIPF_WORDS = 100_000  # its lexicon: pseudo-words ranked by frequency
ZIPF_EXPONENT = 1.0  # the lexicon's k-th word has probability proportional to 1 / k ** exponent
ZIPF_PLANTED_SHARE = 0.1  # share of the tokens in sentences of the planted families
_ZIPF_CHUNK = 1 << 20  # tokens generated at a time
_ZIPF_SENTENCE = (5, 30)  # a lexicon sentence's length: uniform over this range
_ZIPF_SCRAMBLE = 1_000_003  # a prime that divides no power of len(_SYLLABLES) = 70: k -> k * it mod 70^n is a bijection


@functools.lru_cache(maxsize=1)
def _grammar_words() -> frozenset[str]:
    """Every word the planted grammar writes: its word lists and the templates' words (seen in 20,000 sentences)."""
    g = _Grammar(20130907)
    words = _planted_words() | set(_VERBED) | set(_VERB) | set(_ADJ) | set(g.filler) | set(_SINGULAR_DET)
    words |= set(_PLURAL_DET) | {w for t in _TIME for w in t} | {w for p in PRONOUNS.values() for w in p}
    for _ in range(20_000):
        words.update(g.sentence())
    return frozenset(words)


def zipf_lexicon(num_words: int = ZIPF_WORDS) -> list[str]:
    """num_words distinct pseudo-words, consonant-vowel syllables, shorter words first (as in real text, where the
    frequent words are short), none a word of the planted grammar; word k is the k-th most frequent of
    generate_zipf_corpus. Fixed: the same words whatever the seed."""
    taken = _grammar_words()
    syllables = np.frombuffer("".join(_SYLLABLES).encode(), np.uint8).reshape(len(_SYLLABLES), 2)
    out: list[str] = []
    n = 1
    while len(out) < num_words:
        size = len(_SYLLABLES) ** n
        need = num_words - len(out)
        k = np.arange(min(size, need + need // 4 + 100), dtype=np.int64)
        codes = (k * _ZIPF_SCRAMBLE + n) % size  # scrambled, so the ranks are not in alphabetical order
        digits = codes[:, None] // len(_SYLLABLES) ** np.arange(n) % len(_SYLLABLES)
        chars = np.ascontiguousarray(syllables[digits].reshape(len(k), 2 * n))
        words = chars.view(f"S{2 * n}").ravel().astype(f"U{2 * n}").tolist()
        out.extend(w for w in words if w not in taken)
        n += 1
    return out[:num_words]


def _zipf_arguments(num_tokens, seed, num_words, exponent, planted_share) -> tuple[int, int, int, float, float]:
    try:
        num_tokens, seed, num_words = operator.index(num_tokens), operator.index(seed), operator.index(num_words)
        exponent, planted_share = float(exponent), float(planted_share)
    except TypeError:
        raise ValueError(
            f"zipf corpus: num_tokens, seed and num_words must be integers and exponent, planted_share numbers, got "
            f"{num_tokens!r}, {seed!r}, {num_words!r}, {exponent!r}, {planted_share!r}"
        ) from None
    if num_tokens < 1 or num_words < 1:
        raise ValueError(f"zipf corpus: num_tokens and num_words must be >= 1, got {num_tokens} and {num_words}")
    if not 0 < exponent < 10 or not 0 <= planted_share <= 1:
        raise ValueError(
            f"zipf corpus: exponent must be in (0, 10) and planted_share in [0, 1], got {exponent} and {planted_share}"
        )
    return num_tokens, seed, num_words, exponent, planted_share


def zipf_corpus_chunks(
    num_tokens: int = ZIPF_TOKENS,
    seed: int = 0,
    *,
    num_words: int = ZIPF_WORDS,
    exponent: float = ZIPF_EXPONENT,
    planted_share: float = ZIPF_PLANTED_SHARE,
) -> Iterator[str]:
    """generate_zipf_corpus's text in blocks of whole lines (each ends in a newline), about 1M tokens a block."""
    return _zipf_chunks(*_zipf_arguments(num_tokens, seed, num_words, exponent, planted_share))


def _zipf_chunks(num_tokens: int, seed: int, num_words: int, exponent: float, planted_share: float) -> Iterator[str]:
    lexicon = zipf_lexicon(num_words)
    size = np.array([len(w) for w in lexicon])  # the words as rows of bytes, `size` of each in use
    spelled = np.zeros((num_words, size.max()), np.uint8)
    for n in np.unique(size):
        rows = np.flatnonzero(size == n)
        spelled[rows, :n] = np.frombuffer("".join(lexicon[i] for i in rows).encode(), np.uint8).reshape(-1, n)
    cdf = np.cumsum(np.arange(1, num_words + 1, dtype=np.float64) ** -exponent)
    cdf /= cdf[-1]
    rng = np.random.default_rng(seed)
    grammar = _Grammar(seed)
    shortest, longest = _ZIPF_SENTENCE
    done = 0
    while done < num_tokens:
        n = min(_ZIPF_CHUNK, num_tokens - done)
        planted, planted_tokens = [], 0
        while planted_tokens < planted_share * n:
            s = grammar.planted_sentence()
            planted.append(" ".join(s))
            planted_tokens += len(s)
        fill = max(n - planted_tokens, 0)  # lexicon tokens: the block's other sentences
        lengths = rng.integers(shortest, longest + 1, size=fill // shortest + 1)
        ends = np.cumsum(lengths)
        lengths = lengths[: np.searchsorted(ends, fill) + 1] if fill else lengths[:0]
        if fill:
            lengths[-1] -= ends[len(lengths) - 1] - fill  # the last sentence ends at the block's last token
        ranks = np.minimum(np.searchsorted(cdf, rng.random(fill), side="right"), num_words - 1)
        filler = _spell(spelled, size, ranks, np.cumsum(lengths) - 1).split("\n")[:-1]
        lines = np.empty(len(filler) + len(planted), object)
        where = np.zeros(len(lines), bool)
        where[rng.permutation(len(lines))[: len(planted)]] = True  # the planted sentences' places among them
        lines[where], lines[~where] = np.array(planted, object), np.array(filler, object)
        done += planted_tokens + fill
        yield "\n".join(lines.tolist()) + "\n"


def _spell(spelled: np.ndarray, size: np.ndarray, ranks: np.ndarray, line_ends: np.ndarray) -> str:
    """The words `ranks` of the lexicon (rows of `spelled`, `size` bytes each) as text: each followed by a space,
    or by a newline at the positions line_ends; built in bytes, one numpy pass per letter position."""
    n = size[ranks]
    start = np.cumsum(n + 1) - (n + 1)
    text = np.empty(int(start[-1] + n[-1] + 1) if len(n) else 0, np.uint8)
    for j in range(spelled.shape[1]):
        has = np.flatnonzero(n > j)
        text[start[has] + j] = spelled[ranks[has], j]
    text[start + n] = ord(" ")
    text[start[line_ends] + n[line_ends]] = ord("\n")
    return text.tobytes().decode("ascii")


def generate_zipf_corpus(
    num_tokens: int = ZIPF_TOKENS,
    seed: int = 0,
    *,
    num_words: int = ZIPF_WORDS,
    exponent: float = ZIPF_EXPONENT,
    planted_share: float = ZIPF_PLANTED_SHARE,
) -> Iterator[str]:
    """Sentences of a corpus with a realistic vocabulary and the planted relations, until at least num_tokens tokens.

    A share ``planted_share`` of the tokens are sentences of generate_corpus's four planted families (gender,
    countries, plurals, comparatives: ``planted_analogies`` and ``planted_similarities`` score vectors trained on
    it); the rest are sentences of 5 to 30 words drawn independently from ``zipf_lexicon(num_words)`` with
    P(k-th word) ~ 1 / k ** exponent. The defaults (20M tokens, 100k words, exponent 1, 10% planted) give about
    101k words at min_count 5 (the lexicon's and the grammar's) and 2M planted tokens, about as many as
    generate_corpus's default 2M-token corpus holds; the planted sentences are spread at random among the others.
    Generated in numpy blocks of about 1M tokens (a few tens of MB at a time) and deterministic given the
    arguments; ``write_zipf_corpus`` streams it to a file.
    """
    return _zipf_lines(_zipf_arguments(num_tokens, seed, num_words, exponent, planted_share))


def _zipf_lines(args) -> Iterator[str]:
    for block in _zipf_chunks(*args):
        yield from block[:-1].split("\n")


def write_zipf_corpus(path: str, num_tokens: int = ZIPF_TOKENS, seed: int = 0, **kwargs) -> None:
    """Write generate_zipf_corpus(num_tokens, seed, **kwargs) to path, one sentence a line (atomically: a file at
    path is always whole)."""
    from train.core import files

    chunks = zipf_corpus_chunks(num_tokens, seed, **kwargs)
    with files.atomic_write(path, "w", encoding="utf-8") as f:
        for block in chunks:
            f.write(block)


# ----------------------------------------------------------------------------- evaluation sets


def _ordered_pair_questions(pairs) -> list[tuple[str, str, str, str]]:
    return [(a, b, c, d) for (a, b), (c, d) in itertools.permutations(pairs, 2)]


def planted_analogies() -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Questions-words style sections [(name, [(a, b, c, d), ...])], a:b :: c:d over every ordered pair of pairs."""
    return [
        ("family", _ordered_pair_questions([(m, f) for m, f, _, _ in GENDER_PAIRS])),
        ("capital-countries", _ordered_pair_questions([(k, c) for c, k, _, _ in COUNTRIES])),
        ("gram6-nationality-adjective", _ordered_pair_questions([(c, a) for c, _, a, _ in COUNTRIES])),
        ("gram8-plural", _ordered_pair_questions([(s, p) for s, p, _, _ in NOUNS])),
        ("gram3-comparative", _ordered_pair_questions([(b, c) for b, c, _, _ in ADJECTIVES])),
    ]


SIMILARITY_LEVELS = {
    "pair": 9.0,  # the two words of one planted pair: king/queen, france/paris, cat/cats, big/bigger
    "group_same_side": 7.0,  # same group, same side: king/prince, france/germany, cat/dog, big/small
    "group_other_side": 5.0,  # same group, other side: king/princess, france/berlin, cat/dogs, big/smaller
    "family": 3.0,  # same family, other group: king/father, france/japan, cat/car, big/fast
    "unrelated": 1.0,  # different families: king/paris, cat/bigger
}


def planted_similarities(per_level: int = 40) -> list[tuple[str, str, float]]:
    """WordSim-style graded pairs [(w1, w2, score)] from the planted hierarchy (``SIMILARITY_LEVELS``).

    Groups are the gender domain, the continent, the noun category and the adjective
    dimension; sides are male/female, country/capital, singular/plural, base/comparative.
    ``per_level`` pairs are drawn per level and family (fixed generator, so the list is fixed).
    """
    try:
        per_level = operator.index(per_level)
    except TypeError:
        raise ValueError(f"planted_similarities: per_level must be an integer, got {per_level!r}") from None
    if per_level < 1:
        raise ValueError(f"planted_similarities: per_level must be >= 1, got {per_level}")
    families = [  # (word side 0, word side 1, group) per pair
        [(m, f, d) for m, f, d, _ in GENDER_PAIRS],
        [(c, k, cont) for c, k, _, cont in COUNTRIES],
        [(s, p, cat) for s, p, cat, _ in NOUNS],
        [(b, c, dim) for b, c, dim, _ in ADJECTIVES],
    ]
    words = [
        (w, side, group, fam, i)
        for fam, pairs in enumerate(families)
        for i, pair in enumerate(pairs)
        for side, w in enumerate(pair[:2])
        for group in [pair[2]]
    ]

    def level(x, y) -> str | None:
        (_, s1, g1, f1, i1), (_, s2, g2, f2, i2) = x, y
        if f1 != f2:
            return "unrelated"
        if i1 == i2:
            return "pair" if s1 != s2 else None
        if g1 == g2:
            return "group_same_side" if s1 == s2 else "group_other_side"
        return "family"

    buckets: dict[tuple[str, int], list] = {}
    for x, y in itertools.combinations(words, 2):
        lv = level(x, y)
        if lv is not None:
            buckets.setdefault((lv, x[3] if lv != "unrelated" else -1), []).append((x[0], y[0]))
    gen = random.Random(353)
    out: list[tuple[str, str, float]] = []
    for (lv, _), pairs in sorted(buckets.items()):
        take = gen.sample(pairs, min(per_level, len(pairs)))
        out.extend((a, b, SIMILARITY_LEVELS[lv]) for a, b in take)
    return out
