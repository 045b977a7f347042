"""Lucene's ``PorterStemmer`` (a port of Martin Porter's C reference) in Python.

It differs from the published algorithm and from Snowball/PyStemmer ``'porter'``:
``-bli`` -> ``-ble``, ``-logi`` -> ``-log``, words of one or two characters are never stemmed,
and every double consonant but l/s/z is undoubled after ``-ed``/``-ing`` (Snowball: only
bb dd ff gg mm nn pp rr tt; "grokking" -> Lucene "grok", Snowball "grokk").
:func:`snowball_agrees` says on which tokens PyStemmer (much faster) gives Lucene's stem.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence


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


def snowball_agrees(token: str) -> bool:
    return _SNOWBALL_SAFE.fullmatch(token) is not None


__all__ = ["porter_stem", "snowball_agrees"]
