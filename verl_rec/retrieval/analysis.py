"""A pure-Python twin of Anserini's default English analyzer (what pyserini 1.6.0 indexes with).

The in-process BM25 backend must turn text into exactly the terms Lucene would, or its
scores cannot equal Lucene's. Anserini's ``DefaultEnglishAnalyzer`` (Lucene 9.9.1) is:

1. ``StandardTokenizer``: UAX#29 word breaks as written in Lucene's JFlex grammar
   (``3.5``, ``1,000``, ``don't``, ``foo_bar``, ``a:b`` are single tokens; each CJK
   ideograph and each hiragana is its own token; emoji are tokens; tokens longer than
   255 UTF-16 units are cut into pieces of at most 255).
2. ``EnglishPossessiveFilter``: a trailing ``'s``/``’s``/``＇s`` (any case) is cut.
3. ``LowerCaseFilter``: Java's per-code-point ``Character.toLowerCase`` (so ``İ`` -> ``i``
   and ``Σ`` -> ``σ`` everywhere, unlike Python's ``str.lower``).
4. ``StopFilter`` with Lucene's 33 English stop words. Removed words do not count in the
   document length.
5. ``PorterStemFilter``: Lucene's port of Martin Porter's C stemmer, which differs from the
   published algorithm (and from Snowball/PyStemmer ``'porter'``): ``-bli`` -> ``-ble``,
   ``-logi`` -> ``-log``, words of one or two characters are never stemmed, and every
   double consonant but l/s/z is undoubled after ``-ed``/``-ing`` (Snowball: only
   bb dd ff gg mm nn pp rr tt; "grokking" -> Lucene "grok", Snowball "grokk").

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

import re
import threading
from array import array
from typing import Iterable, Sequence

import regex

#: identifies this analyzer in index metadata; bump when its output changes
ANALYZER_NAME = "anserini-default-english/lucene-9.9.1/v1"

#: Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (Anserini's default stop words)
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

MAX_TOKEN_LENGTH = 255  # StandardTokenizer's default, counted in UTF-16 code units

# ---------------------------------------------------------------------------------------
# Tokenizer: Lucene's StandardTokenizerImpl.jflex rules, written as a regex.

# ASCII-only text has no Extend/Format characters, Katakana, Hebrew, or emoji, so the word
# rule collapses to this (and runs much faster than the Unicode pattern).
_ASCII_ITEM = r"(?:[A-Za-z](?:_*[A-Za-z]|[:.'][A-Za-z])*|[0-9](?:_*[0-9]|[.,;'][0-9])*)"
_ASCII_TOKEN = re.compile(rf"_*{_ASCII_ITEM}+(?:_+{_ASCII_ITEM}+)*_*")


def _unicode_token_pattern() -> tuple[regex.Pattern, regex.Pattern, regex.Pattern]:
    x = r"[\p{WB=Format}\p{WB=Extend}\p{WB=ZWJ}]*"  # WB4: X (Extend | Format | ZWJ)* -> X
    ahletter = rf"[\p{{WB=ALetter}}\p{{WB=Hebrew_Letter}}]{x}"
    numeric = rf"[\p{{WB=Numeric}}[\p{{Block=Halfwidth_And_Fullwidth_Forms}}&&\p{{Nd}}]]{x}"
    katakana = rf"\p{{WB=Katakana}}{x}"
    mid_letter = rf"[\p{{WB=MidLetter}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{x}"
    mid_numeric = rf"[\p{{WB=MidNum}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{x}"
    enl = rf"\p{{WB=ExtendNumLet}}{x}"
    hebrew = rf"\p{{WB=Hebrew_Letter}}{x}"
    single_quote = rf"\p{{WB=Single_Quote}}{x}"
    double_quote = rf"\p{{WB=Double_Quote}}{x}"
    body = (
        rf"(?:{katakana}(?:(?:{enl})*{katakana})*"
        rf"|(?:{hebrew}(?:{single_quote}|{double_quote}{hebrew})"
        rf"|{numeric}(?:(?:(?:{enl})*|{mid_numeric}){numeric})*"
        rf"|{ahletter}(?:(?:(?:{enl})*|{mid_letter}){ahletter})*)+)"
    )
    word = rf"(?:{enl})*{body}(?:(?:{enl})+{body})*(?:{enl})*"

    # Emoji (Unicode TR#51 emoji_sequence, as in Lucene's grammar).
    xe = r"[[\p{WB=Format}\p{WB=Extend}\p{WB=ZWJ}]--[\uFE0E\uFE0F]]*"
    rkam = r"\p{WB=Regional_Indicator}0-9#*\u00A9\u00AE\u2122\u3030\u303D\p{Emoji_Modifier}"
    emoji_char = rf"[\p{{Extended_Pictographic}}[\p{{Emoji}}--[{rkam}]]]{xe}"
    modifier_seq = rf"(?:\p{{WB=ZWJ}}*\p{{Emoji_Modifier_Base}}{xe})?\p{{Emoji_Modifier}}{xe}"
    # the modifier sequence is tried first: a modifier base is also an emoji character, and
    # JFlex takes the longest match
    one = rf"(?:{modifier_seq}|\p{{WB=ZWJ}}*{emoji_char}\uFE0F?)"
    emoji = (
        rf"{one}(?:[\U000E0020-\U000E007E]+\U000E007F|(?:\p{{WB=ZWJ}}{one})*)"
        rf"|[0-9#*]{xe}\uFE0F?\u20E3{xe}"
        rf"|\p{{WB=Regional_Indicator}}{x}\p{{WB=Regional_Indicator}}{x}"
    )
    south_east_asian = rf"(?:\p{{LB=SA}}{x})+"
    han = rf"\p{{Script=Han}}{x}"
    hiragana = rf"\p{{Script=Hiragana}}{x}"
    combined = rf"{word}|{emoji}|{south_east_asian}|{han}|{hiragana}"
    # JFlex takes the longest match; a backtracking regex takes the first. They can differ
    # only around Hebrew letters (WB7b/c) and emoji (a ZWJ may end one emoji or join the
    # next): there the match is redone leftmost-longest (POSIX mode: several times slower).
    return (
        regex.compile(combined, regex.V1),
        regex.compile(combined, regex.V1 | regex.POSIX),
        regex.compile(r"[\p{WB=Hebrew_Letter}\p{Extended_Pictographic}\p{Emoji}\p{WB=ZWJ}]", regex.V1),
    )


_UNICODE_TOKEN, _UNICODE_LONGEST, _GREEDY_MAY_DIFFER = _unicode_token_pattern()
_WINDOW, _MARGIN = 1024, 256  # scan in windows so that a 1 MB "word" costs O(n), not O(n^2)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_SPACE = re.compile(r"[\t\n\v\f\r ]")


def _utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _prefix_within(text: str, units: int) -> str:
    """Longest prefix of ``text`` that fits in ``units`` UTF-16 code units."""
    if text.isascii():
        return text[:units]
    used = 0
    for i, c in enumerate(text):
        used += 2 if ord(c) > 0xFFFF else 1
        if used > units:
            return text[:i]
    return text


def _scan(text: str, pos: int, end: int, unicode: bool, tokens: list[str]) -> None:
    """Append the tokens of ``text[pos:end]`` (a span no token crosses) to ``tokens``."""
    pattern = _UNICODE_TOKEN if unicode else _ASCII_TOKEN
    while pos < end:
        endpos = min(end, pos + _WINDOW)
        match = pattern.search(text, pos, endpos)
        if match is None:
            if endpos == end:
                return
            pos = max(pos + 1, endpos - _MARGIN)  # a token may start here but need text past the window
            continue
        start = match.start()
        if endpos < end and match.end() > endpos - _MARGIN and start > pos:
            pos = start  # the token may continue past the window: rescan from its start
            continue
        if unicode and _GREEDY_MAY_DIFFER.search(text, start, min(end, match.end() + 1)):
            longest = _UNICODE_LONGEST.match(text, start, min(end, start + _WINDOW))
            if longest is not None and longest.end() > match.end():
                match = longest
        token = match.group()
        if len(token) > MAX_TOKEN_LENGTH // 2 and _utf16_len(token) > MAX_TOKEN_LENGTH:
            token, pos = _cut_long_token(pattern, text, start, match.end())
        else:
            pos = match.end()
        tokens.append(token)


def _cut_long_token(pattern, text: str, start: int, match_end: int) -> tuple[str, int]:
    """What Lucene's 255-unit scanner buffer makes of a longer token: (token, where to resume).

    The longest token that fits in the buffer is emitted, and scanning starts afresh after
    it. If no token fits (e.g. 300 underscores then a letter), the scanner drops the oldest
    characters and emits the 255 units that end where the first token ends.
    """
    window = _prefix_within(text[start : start + MAX_TOKEN_LENGTH], MAX_TOKEN_LENGTH)
    fits = pattern.match(window)
    if fits is not None:
        return fits.group(), start + fits.end()
    first_end = start + 1
    while first_end < match_end and pattern.fullmatch(text, start, first_end) is None:
        first_end += 1
    return _suffix_within(text[max(start, first_end - MAX_TOKEN_LENGTH) : first_end], MAX_TOKEN_LENGTH), first_end


def _suffix_within(text: str, units: int) -> str:
    """Longest suffix of ``text`` that fits in ``units`` UTF-16 code units."""
    return _prefix_within(text[::-1], units)[::-1]


def tokenize(text: str) -> list[str]:
    """Lucene ``StandardTokenizer`` tokens of ``text`` (case and punctuation as in the input).

    No token contains ASCII whitespace, so only the whitespace-delimited chunks that hold a
    non-ASCII character need the (slow) Unicode pattern; the rest uses the ASCII one.
    """
    tokens: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        odd = _NON_ASCII.search(text, pos)
        if odd is None:
            _scan_fast(text, pos, end, False, tokens)
            break
        chunk_start = max(text.rfind(c, pos, odd.start()) for c in "\t\n\v\f\r ") + 1
        chunk_start = max(chunk_start, pos)
        space = _ASCII_SPACE.search(text, odd.end())
        chunk_end = space.start() if space else end
        _scan_fast(text, pos, chunk_start, False, tokens)
        _scan_fast(text, chunk_start, chunk_end, True, tokens)
        pos = chunk_end
    return tokens


def _scan_fast(text: str, pos: int, end: int, unicode: bool, tokens: list[str]) -> None:
    """:func:`_scan` at C speed when no token is long and greedy matching is safe."""
    if pos >= end:
        return
    found = (_UNICODE_TOKEN if unicode else _ASCII_TOKEN).findall(text, pos, end)
    if max(map(len, found), default=0) > MAX_TOKEN_LENGTH // 2 or (
        unicode and _GREEDY_MAY_DIFFER.search(text, pos, end)
    ):
        _scan(text, pos, end, unicode, tokens)
    else:
        tokens.extend(found)


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
# Porter stemmer with Lucene's (= Martin Porter's C reference) semantics.


def _consonants(w: str) -> list[bool]:
    flags: list[bool] = []
    for i, c in enumerate(w):
        if c in "aeiou":
            flags.append(False)
        elif c == "y":
            flags.append(True if i == 0 else not flags[i - 1])
        else:
            flags.append(True)
    return flags


def _measure(w: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``w``."""
    f = _consonants(w)
    return sum(1 for i in range(1, len(f)) if f[i] and not f[i - 1])


def _has_vowel(w: str) -> bool:
    return not all(_consonants(w))


def _double_consonant(w: str) -> bool:
    return len(w) >= 2 and w[-1] == w[-2] and _consonants(w)[-1]


def _cvc(w: str) -> bool:
    if len(w) < 3 or w[-1] in "wxy":
        return False
    f = _consonants(w)
    return f[-1] and not f[-2] and f[-3]


_STEP2 = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP3 = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
_STEP4 = {
    "a": ("al",),
    "c": ("ance", "ence"),
    "e": ("er",),
    "i": ("ic",),
    "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"),
    "s": ("ism",),
    "t": ("ate", "iti"),
    "u": ("ous",),
    "v": ("ive",),
    "z": ("ize",),
}


def _step1(w: str) -> str:
    if w.endswith("s"):
        if w.endswith("sses"):
            w = w[:-2]
        elif w.endswith("ies"):
            w = w[:-2]
        elif w[-2] != "s":
            w = w[:-1]
    if w.endswith("eed"):
        if _measure(w[:-3]) > 0:
            w = w[:-1]
        return w
    stem = w[:-2] if w.endswith("ed") else w[:-3] if w.endswith("ing") else None
    if stem is None or not _has_vowel(stem):
        return w
    w = stem
    if w.endswith(("at", "bl", "iz")):
        return w + "e"
    if _double_consonant(w):
        return w if w[-1] in "lsz" else w[:-1]
    if _measure(w) == 1 and _cvc(w):
        return w + "e"
    return w


def _replace(w: str, rules: Sequence[tuple[str, str]]) -> str:
    # the first suffix that matches decides, whether or not its m > 0 condition holds
    for suffix, replacement in rules:
        if w.endswith(suffix):
            stem = w[: len(w) - len(suffix)]
            return stem + replacement if _measure(stem) > 0 else w
    return w


def _step4(w: str) -> str:
    if w[-2] == "o":
        if w.endswith("ion") and len(w) >= 4 and w[-4] in "st":
            stem = w[:-3]
        elif w.endswith("ou"):
            stem = w[:-2]
        else:
            return w
    else:
        stem = next((w[: len(w) - len(s)] for s in _STEP4.get(w[-2], ()) if w.endswith(s)), None)
        if stem is None:
            return w
    return stem if _measure(stem) > 1 else w


def _step5(w: str) -> str:
    if w.endswith("e"):
        m = _measure(w)
        if m > 1 or (m == 1 and not _cvc(w[:-1])):
            w = w[:-1]
    if w.endswith("l") and _double_consonant(w) and _measure(w) > 1:
        w = w[:-1]
    return w


def _porter_units(w: str) -> str:
    if len(w) <= 2:
        return w
    w = _step1(w)
    if w.endswith("y") and _has_vowel(w[:-1]):
        w = w[:-1] + "i"
    if len(w) >= 2:
        w = _replace(w, _STEP2.get(w[-2], ()))
    w = _replace(w, _STEP3.get(w[-1], ()))
    if len(w) >= 2:
        w = _step4(w)
    return _step5(w)


def porter_stem(word: str) -> str:
    """Lucene's ``PorterStemmer`` on one lower-cased token (works on UTF-16 units like Java)."""
    if word.isascii() or all(ord(c) <= 0xFFFF for c in word):
        return _porter_units(word)
    units = array("H", word.encode("utf-16-le", "surrogatepass"))
    as_units = "".join(map(chr, units))
    return _porter_units(as_units).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


# Tokens on which PyStemmer's 'porter' gives Lucene's stem (checked on ~900k words): ASCII
# letters/digits, 3+ characters, no "bl"/"log" (the C departures), and no double consonant
# that Snowball keeps after -ed/-ing ("grokking" -> Snowball "grokk", Lucene "grok").
_SNOWBALL_SAFE = re.compile(r"(?!.*(?:bl|log|cc|hh|jj|kk|qq|vv|ww|xx|yy|([0-9])\1))[a-z0-9]{3,}")


def _snowball_agrees(token: str) -> bool:
    return _SNOWBALL_SAFE.fullmatch(token) is not None


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
        fast = [t for t in todo if _snowball_agrees(t)]
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


__all__ = [
    "ANALYZER_NAME",
    "STOP_WORDS",
    "LuceneEnglishAnalyzer",
    "porter_stem",
    "tokenize",
]
