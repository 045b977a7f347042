"""Our Python analyzer against Lucene's (Anserini's DefaultEnglishAnalyzer through pyserini).

Exact token equality is required on the whole Vaswani collection; on hand-written tricky
strings and on random mixed-script strings the mismatch rate is printed and must stay tiny
(known difference: characters newer than Lucene's Unicode tables, see analysis.py).
"""

from __future__ import annotations

import random
import time

import pytest

from verl_rec.retrieval.bm25s.lucene_analyzer import STOP_WORDS, LuceneEnglishAnalyzer
from verl_rec.retrieval.bm25s.porter_stemmer import porter_stem, snowball_agrees
from verl_rec.retrieval.bm25s.standard_tokenizer import tokenize

TRICKY = [
    # numbers with dots / commas
    "3.5 inch", "1,000,000 units", "1.000,50 EUR", "v1.2.3-beta", "3.5x zoom x3.5", "a.1 1.a", "1,,0 1..2 1.,2",
    "$19.99 -5 +7 50% 1/2 3:30pm", "192.168.0.1:8080", "1e10 0x1F 2^10", "١٢٣ ۱۲۳ ๑๒ १२३", "１２３ｘ",
    # apostrophes and possessives
    "don't won't can't", "O'Neil's rock'n'roll", "John's JOHN'S Johns' s's", "don’t John’s", "John＇s",
    "'quoted' ''double'' 'tis", "l'homme d’Artagnan", "it''s 1'000", "teachers' union",
    # hyphens and dashes
    "state-of-the-art e-mail co-op", "well\u2010known en\u2013dash em\u2014dash", "x-ray -start end- --double--",
    "soft\u00adhyphen", "hyphen-\nated",
    # URLs, e-mails, paths
    "http://www.example.com/path/to?q=1&r=2#frag", "https://sub.domain.co.uk:443/a_b-c.html",
    "user.name+tag@example.co.uk", "mailto:someone@x.org", "C:\\Program Files\\x.exe /usr/local/bin",
    "www.amazon.com/dp/B08N5WRWNW", "ftp://files.x.org/pub/file.tar.gz",
    # underscores and other connectors
    "foo_bar __init__ _private trailing_ snake_case_name", "a_1 1_a 1_000 a__b", "foo\u203fbar x\uff3fy",
    # CJK and other Asian scripts
    "中文分词测试", "日本語のテキスト", "カタカナとひらがな", "한국어 텍스트 테스트", "ภาษาไทยง่ายๆ", "ພາສາລາວ",
    "မြန်မာ", "ភាសាខ្មែរ", "中文English混合123", "ｶﾀｶﾅ 半角", "漢字ABC漢字",
    # accents, ligatures, case mapping, other scripts
    "café naïve résumé", "e\u0301te\u0301 cafe\u0301", "Straße STRASSE", "ﬁnancial ﬂow", "İstanbul ıi",
    "ΣΑΣ ΟΔΥΣΣΕΥΣ", "Ελληνικά κείμενα", "русский текст", "עברית טקסט", "ג'ירפה צה\"ל", "العربية نص",
    "हिन्दी पाठ", "Ωmega µ°C", "ǅungla Ǆ", "𝐁𝐨𝐥𝐝 𝔉𝔯𝔞𝔨𝔱𝔲𝔯", "𐌰𐌱𐌲 gothic",
    # emoji
    "I ❤️ NY", "👍🏽 thumbs", "👨‍👩‍👧 family", "🇺🇸🇬🇧 flags", "1️⃣ #️⃣ *️⃣", "© ® ™ trademark",
    "🙂🙂🙂", "☺ ☺️ ☺︎", "🏳️‍🌈 flag", "abc🙂def", "ℹ️ info Ⓜ", "ℹ\u200d🙂",
    # control characters and odd white space
    "tab\tsep\nnew\rline", "nul\x00char", "bell\x07\x1b[0m", "zero\u200bwidth", "zwj\u200djoin", "nbsp\u00a0space",
    "\ufeffbom", "line\u2028sep", "rtl\u200fmark", "\x7fdel", "a\u202fb",
    # Lucene query syntax and stop words
    "title:(foo AND bar) OR NOT baz~2 qux^3", "\"exact phrase\" +must -not", "[a TO z] {1 TO 9}", "wild* card? fuz~",
    "a:b:c a::b :start end:", "the AND of OR a NOT", "back\\slash for/ward", "AND OR NOT", "contents:microwave",
    # product-like strings
    "iPhone 8 Plus 64GB", "USB-C 3.1 Gen2", "4K UHD 55\" TV", "Nike Air Max 270", "3M 8210 N95",
    "Men's T-Shirt (XL)", "B&O H9i", "AT&T", "Wi-Fi 6E", "H2O2 CO2 pH7.4", "mp3/mp4", "ISO9001:2015",
    "Dr. Smith Jr.", "U.S.A. e.g. i.e.", "No. 5 vs. 6", "UPPER lower MiXeD", "x86_64 arm64-v8a",
    # tokens longer than Lucene's 255-unit buffer
    "a" * 300, "1" * 600, "ab." * 120, "x" * 255, "ภ" * 300, "𝐁" * 200, "a." * 200, "a" * 254 + ".b",
    "_" * 255 + "a", "_" * 600 + "ab", "a" + "_" * 300 + "b", "\u0301" * 300 + "a", "a" + "\u0301" * 300,
]

_PIECES = list("abcXYZ019 .,';:_-\"@/") + [
    "é", "ß", "İ", "Σ", "中", "文", "の", "カ", "ア", "한", "ภา", "א", "ב", "\u05f3", "\u0301", "\u200d", "\u00ad",
    "🙂", "👍", "🏽", "\ufe0f", "\u20e3", "🇺", "©", "™", "ℹ", "١", "１", "\u2019", "\u00b7", "\u202f", "\u3000",
    "ﬁ", "𝐁", "\u0130s", "ing", "ed", "'s",
]


@pytest.fixture(scope="module")
def lucene_analyze():
    """Lucene's analyzer (the one pyserini indexes and searches with) as a Python function."""
    pytest.importorskip("pyserini")
    from conftest import LUCENE_HEAP
    from verl_rec.retrieval.lucene.java import ensure_java

    ensure_java(LUCENE_HEAP)
    from pyserini.analysis import Analyzer, get_lucene_analyzer

    return Analyzer(get_lucene_analyzer()).analyze


@pytest.fixture(scope="module")
def analyzer() -> LuceneEnglishAnalyzer:
    return LuceneEnglishAnalyzer()


def _mismatches(texts, lucene_analyze, analyzer):
    return [(t, lucene_analyze(t), analyzer(t)) for t in texts if lucene_analyze(t) != analyzer(t)]


def test_vaswani_terms_equal_lucene(vaswani, lucene_analyze, analyzer):
    texts = list(vaswani.docs.values()) + list(vaswani.topics.values())
    expected = [lucene_analyze(t) for t in texts]
    started = time.perf_counter()
    got = analyzer.analyze_many(texts)
    elapsed = time.perf_counter() - started
    bad = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
    print(f"\n[analysis] Vaswani: {len(texts)} texts, {len(bad)} differ from Lucene; "
          f"{sum(map(len, texts)) / elapsed / 1e6:.2f} MB/s cold cache")
    assert not bad, bad[:3]


def test_tricky_strings_mismatch_rate(lucene_analyze, analyzer):
    bad = _mismatches(TRICKY, lucene_analyze, analyzer)
    print(f"\n[analysis] tricky strings: {len(bad)}/{len(TRICKY)} differ from Lucene ({len(bad) / len(TRICKY):.1%})")
    for text, expected, got in bad:
        print(f"  {text[:60]!r}: lucene {expected[:8]} ours {got[:8]}")
    assert len(bad) <= 0.02 * len(TRICKY)


def test_random_mixed_script_strings(lucene_analyze, analyzer):
    rng = random.Random(7)
    texts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 25))) for _ in range(1500)]
    bad = _mismatches(texts, lucene_analyze, analyzer)
    print(f"\n[analysis] random mixed-script strings: {len(bad)}/{len(texts)} differ from Lucene")
    for text, expected, got in bad[:5]:
        print(f"  {text!r}: lucene {expected} ours {got}")
    assert len(bad) <= 0.01 * len(texts)


def test_known_difference_newer_unicode(lucene_analyze, analyzer):
    """Documented: a CJK Extension H ideograph (Unicode 15) is unknown to Lucene's tables."""
    assert lucene_analyze("\U00031350") == []
    assert analyzer("\U00031350") == ["\U00031350"]


def _stem_vocabulary(vaswani) -> list[str]:
    """Vaswani's words plus suffixed forms that reach every Porter step (and its C departures)."""
    words = sorted({w for text in vaswani.docs.values() for w in text.lower().split() if w.isalpha()})
    suffixes = ("ing", "ed", "ly", "ness", "ational", "ization", "ibly", "ably", "ology", "ologies", "ical",
                "fulness", "iveness", "eed", "ies", "sses", "ement", "ent", "ism", "iti", "ous", "y", "e", "s")
    rng = random.Random(3)
    extra = {w + s for w in rng.sample(words, min(2000, len(words))) for s in suffixes}
    extra |= {"grokking", "specced", "possibly", "technology", "analogy", "biology", "us", "os", "ds", "sky",
              "skies", "yyy", "hopping", "hoping", "fizzed", "failing", "filing", "agreed", "feed", "troubling"}
    return sorted(set(words) | extra)


def test_porter_stemmer_equals_lucene(vaswani, lucene_analyze, analyzer):
    words = [w for w in _stem_vocabulary(vaswani) if w not in STOP_WORDS]
    expected = []
    for start in range(0, len(words), 5000):  # one Lucene call per 5000 words: one token each
        expected += lucene_analyze(" ".join(words[start:start + 5000]))
    assert len(expected) == len(words)
    ours = [porter_stem(w) for w in words]
    bad = [(w, e, o) for w, e, o in zip(words, expected, ours) if e != o]
    print(f"\n[analysis] Porter stems: {len(bad)}/{len(words)} differ from Lucene")
    assert not bad, bad[:10]
    # PyStemmer ('porter', Snowball) is only used where it agrees with Lucene
    import Stemmer

    fast = [i for i, w in enumerate(words) if snowball_agrees(w)]
    snowball = Stemmer.Stemmer("porter").stemWords([words[i] for i in fast])
    assert [expected[i] for i in fast] == snowball
    assert 0.5 * len(words) < len(fast) < len(words)
    stems = analyzer.stem_many(words)
    assert [stems[w] for w in words] == expected


def test_lucene_specific_behaviour(analyzer):
    assert analyzer("iphone 8") == ["iphon", "8"]  # one-character tokens are kept
    assert analyzer("possibly technology grokking us") == ["possibl", "technolog", "grok", "us"]
    assert analyzer("İSTANBUL ΣΑΣ") == ["istanbul", "σασ"]  # Java's per-code-point lower-casing
    assert analyzer("John's JOHN’S") == ["john", "john"]
    assert analyzer("contents:microwave 3.5 1,000 don't foo_bar") == ["contents:microwav", "3.5", "1,000", "don't",
                                                                      "foo_bar"]
    assert analyzer("the AND of OR a NOT") == []  # Boolean operators are stop words
    assert tokenize("中文 ひらがな カタカナ") == ["中", "文", "ひ", "ら", "が", "な", "カタカナ"]
    assert [len(t) for t in tokenize("a" * 600)] == [255, 255, 90]
    assert len(STOP_WORDS) == 33


def test_hostile_text_never_raises(analyzer):
    hostile = ["", "\x00" * 10, "\ud800 lone \udfff surrogates \ud83d", "a" * 1_000_000, "ภ" * 100_000,
               "🙂" * 10_000, "\u0301" * 1000, "_" * 5000 + "a", "." * 10_000, " ".join(["word"] * 10_000)]
    for text in hostile:
        started = time.perf_counter()
        terms = analyzer(text)
        assert isinstance(terms, list)
        assert time.perf_counter() - started < 10, f"{text[:20]!r} took too long"
    assert analyzer("_" * 5000 + "a")[-1].endswith("a")
