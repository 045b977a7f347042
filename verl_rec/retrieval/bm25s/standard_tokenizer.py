"""Lucene 9.9.1's ``StandardTokenizer`` (UAX#29 word breaks, as in its JFlex grammar) in Python.

``3.5``, ``1,000``, ``don't``, ``foo_bar``, ``a:b`` are single tokens; each CJK ideograph and
each hiragana is its own token; emoji are tokens; tokens longer than 255 UTF-16 units are cut
into pieces of at most 255, as Lucene's scanner buffer does. Character properties come from
the ``regex`` module's Unicode tables (newer than Lucene's: see
:mod:`~verl_rec.retrieval.bm25s.lucene_analyzer` for the one known difference).
"""

from __future__ import annotations

import re

import regex

MAX_TOKEN_LENGTH = 255  # StandardTokenizer's default, counted in UTF-16 code units

# ---------------------------------------------------------------------------------------
# Lucene's StandardTokenizerImpl.jflex rules, written as a regex.

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


__all__ = ["MAX_TOKEN_LENGTH", "tokenize"]
