"""A pure-Python twin of Anserini's default English analyzer (what pyserini 1.6.0 indexes with).

The in-process BM25 backend must turn text into exactly the terms Lucene would, or its
scores cannot equal Lucene's. Anserini's ``DefaultEnglishAnalyzer`` (Lucene 9.9.1) is:

1. ``StandardTokenizer`` (:mod:`~verl_rec.retrieval.bm25s.standard_tokenizer`): UAX#29 word
   breaks as written in Lucene's JFlex grammar (``3.5``, ``1,000``, ``don't``, ``foo_bar``,
   ``a:b`` are single tokens; each CJK ideograph and each hiragana is its own token; emoji
   are tokens; tokens longer than 255 UTF-16 units are cut into pieces of at most 255).
2. ``EnglishPossessiveFilter``: a trailing ``'s``/``’s``/``＇s`` (any case) is cut.
3. ``LowerCaseFilter``: Java's per-code-point ``Character.toLowerCase`` (so ``İ`` -> ``i``
   and ``Σ`` -> ``σ`` everywhere, unlike Python's ``str.lower``).
4. ``StopFilter`` with Lucene's 33 English stop words. Removed words do not count in the
   document length.
5. ``PorterStemFilter`` (:mod:`~verl_rec.retrieval.bm25s.porter_stemmer`): Lucene's port of
   Martin Porter's C stemmer, which differs from the published algorithm (and from
   Snowball/PyStemmer ``'porter'``): ``-bli`` -> ``-ble``, ``-logi`` -> ``-log``, words of one
   or two characters are never stemmed, and every double consonant but l/s/z is undoubled
   after ``-ed``/``-ing`` (Snowball: only bb dd ff gg mm nn pp rr tt; "grokking" -> Lucene
   "grok", Snowball "grokk").

PyStemmer is used as a fast path only for tokens where it agrees with Lucene's stemmer
(ASCII letters/digits, 3+ characters, none of the letter pairs behind the differences
above); every other token goes through :func:`porter_stem`, our own implementation of
Lucene's rules. Stems are cached per distinct token.

Known difference from Lucene: character properties come from the ``regex`` module's Unicode
tables, newer than Lucene's, so characters assigned recently (e.g. CJK Extension H, Unicode
15) are tokens here but dropped by Lucene. On the Vaswani collection, 114 hand-written
tricky strings and thousands of random mixed-script strings the output equals Lucene's
(tests/test_analysis.py). The ``regex`` package (a dependency of transformers) is required.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from verl_rec.retrieval.bm25s.porter_stemmer import porter_stem, snowball_agrees
from verl_rec.retrieval.bm25s.standard_tokenizer import tokenize

#: identifies this analyzer in index metadata; bump when its output changes
ANALYZER_NAME = "anserini-default-english/lucene-9.9.1/v1"

#: Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (Anserini's default stop words)
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

# ---------------------------------------------------------------------------------------
# Token filters.

_POSSESSIVE_QUOTES = ("'", "\u2019", "\uff07")
_JAVA_LOWER_EXCEPTIONS = {"\u0130": "i"}  # Python's full mapping gives "i̇"; Java's simple one "i"


def _java_lower(token: str) -> str:
    if token.isascii():
        return token.lower()
    out = []
    for c in token:
        low = c.lower()
        out.append(low if len(low) == 1 else _JAVA_LOWER_EXCEPTIONS.get(c, c))
    return "".join(out)


def _strip_possessive(token: str) -> str:
    if len(token) >= 2 and token[-1] in "sS" and token[-2] in _POSSESSIVE_QUOTES:
        return token[:-2]
    return token


# ---------------------------------------------------------------------------------------
# The analyzer.


class LuceneEnglishAnalyzer:
    """Text -> index terms, as Anserini's default English analyzer; stems are cached.

    ``max_cache`` bounds the stem cache (query text is adversarial in RL: new junk tokens
    must not grow memory forever).
    """

    name = ANALYZER_NAME

    def __init__(self, max_cache: int = 2_000_000) -> None:
        import Stemmer  # PyStemmer

        self._snowball = Stemmer.Stemmer("porter")
        self._snowball.maxCacheSize = 0  # we cache ourselves
        self._snowball_lock = threading.Lock()
        self._stems: dict[str, str] = {}
        self._max_cache = max_cache

    def surface_tokens(self, text: str) -> list[str]:
        """Tokens after possessive removal, lower-casing and stop words; not yet stemmed."""
        out = []
        for token in tokenize(text):
            token = _java_lower(_strip_possessive(token))
            if token not in STOP_WORDS:
                out.append(token)
        return out

    def stem_many(self, tokens: Iterable[str]) -> dict[str, str]:
        """Stems of the distinct ``tokens`` (one PyStemmer call for all fast-path ones), cached."""
        cache = self._stems
        found: dict[str, str] = {}
        todo: list[str] = []
        for token in set(tokens):
            stem = cache.get(token)
            if stem is None:
                todo.append(token)
            else:
                found[token] = stem
        if not todo:
            return found
        fast = [t for t in todo if snowball_agrees(t)]
        with self._snowball_lock:  # PyStemmer objects are not thread-safe
            new = dict(zip(fast, self._snowball.stemWords(fast)))
        for token in todo:
            if token not in new:
                new[token] = porter_stem(token)
        if len(cache) + len(new) > self._max_cache:
            cache.clear()
        cache.update(new)
        found.update(new)
        return found

    def __call__(self, text: str) -> list[str]:
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        """Index terms of every text, in order; duplicates kept (they are term frequencies)."""
        surfaces = [self.surface_tokens(t) for t in texts]
        stems = self.stem_many(t for tokens in surfaces for t in tokens)
        return [[stems[t] for t in tokens] for tokens in surfaces]


__all__ = ["ANALYZER_NAME", "STOP_WORDS", "LuceneEnglishAnalyzer"]
