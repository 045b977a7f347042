"""Lucene 9.9.1's BM25 arithmetic, bit for bit, as pure numpy functions.

Why: equal scores give equal rankings, ties included, so the in-process backend can stand in
for the paper's Lucene engine. Lucene's BM25 differs from textbook BM25 in three ways that
change rankings: document lengths are stored lossily in one byte (``SmallFloat.intToByte4``,
exact below 24 tokens, 4 significant bits above), all per-term arithmetic is float32 in a
specific order, and a query term repeated ``n`` times is one clause boosted by ``n``
(Anserini's ``BagOfWordsQueryGenerator``). Sources: ``BM25Similarity`` and ``SmallFloat``
of Lucene 9.9.1 (the version in pyserini 1.6.0's Anserini 1.7.1 jar).

Per query term ``t`` with boost ``n`` and document ``d`` (all float32 unless noted)::

    avgdl  = (float) (sumTotalTermFreq / (double) docCount)
    idf    = (float) Math.log(1 + (docCount - docFreq + 0.5) / (docFreq + 0.5))   # double inside
    cache[i] = 1f / (k1 * ((1 - b) + b * LENGTH_TABLE[i] / avgdl))                 # i = norm byte
    weight = n * idf
    score  = weight - weight / (1f + freq * cache[norm(d)])

and the document score is the float32 cast of the double sum of its term scores (Lucene's
disjunction scorers accumulate in double). ``docCount`` counts documents with at least one
indexed token; document length is the number of indexed tokens (stop words excluded).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
_NUM_FREE_VALUES = 24  # 255 - longToInt4(Integer.MAX_VALUE)


def _long_to_int4(values: np.ndarray) -> np.ndarray:
    """SmallFloat.longToInt4: 4 significant bits, the 3 below the leading one kept."""
    values = values.astype(np.int64)
    bits = np.frexp(values.astype(np.float64))[1].astype(np.int64)  # bit length; exact below 2**53
    shift = np.maximum(bits - 4, 0)
    encoded = ((values >> shift) & 0x07) | ((shift + 1) << 3)
    return np.where(bits < 4, values, encoded)


def int_to_byte4(lengths: np.ndarray | int) -> np.ndarray:
    """SmallFloat.intToByte4: the norm byte Lucene stores for each document length."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if np.any(lengths < 0) or np.any(lengths > 2**31 - 1):
        raise ValueError("document lengths must be in [0, 2**31 - 1]")
    small = lengths < _NUM_FREE_VALUES
    large = _NUM_FREE_VALUES + _long_to_int4(np.maximum(lengths - _NUM_FREE_VALUES, 0))
    return np.where(small, lengths, large).astype(np.uint8)


def byte4_to_int(norms: np.ndarray | int) -> np.ndarray:
    """SmallFloat.byte4ToInt: the (approximate) document length a norm byte stands for."""
    i = np.asarray(norms, dtype=np.int64) & 0xFF
    j = np.maximum(i - _NUM_FREE_VALUES, 0)
    shift = (j >> 3) - 1
    decoded = np.where(shift < 0, j & 0x07, ((j & 0x07) | 0x08) << np.maximum(shift, 0))
    return np.where(i < _NUM_FREE_VALUES, i, _NUM_FREE_VALUES + decoded)


#: BM25Similarity.LENGTH_TABLE: float32 decoded length of every norm byte
LENGTH_TABLE = byte4_to_int(np.arange(256)).astype(F32)


def avg_field_length(sum_total_term_freq: int, doc_count: int) -> np.float32:
    """BM25Similarity.avgFieldLength: a double division, cast to float."""
    return F32(float(sum_total_term_freq) / float(doc_count))


def idf(doc_freq: np.ndarray | int, doc_count: int) -> np.ndarray:
    """BM25Similarity.idf in double, cast to float32 (one value per term)."""
    df = np.asarray(doc_freq, dtype=np.float64)
    return np.log(1.0 + (float(doc_count) - df + 0.5) / (df + 0.5)).astype(F32)


def norm_inverse_cache(k1: float, b: float, avgdl: np.float32) -> np.ndarray:
    """BM25Similarity.scorer's ``cache``: 1 / (k1 * (1 - b + b * dl / avgdl)) per norm byte, float32."""
    k1, b, avgdl = F32(k1), F32(b), F32(avgdl)
    with np.errstate(divide="ignore"):
        return F32(1) / (k1 * ((F32(1) - b) + b * LENGTH_TABLE / avgdl))


def term_weight(boost: np.ndarray | float, term_idf: np.ndarray | float) -> np.ndarray:
    """BM25Scorer.weight = boost * idf (float32)."""
    return np.asarray(boost, dtype=F32) * np.asarray(term_idf, dtype=F32)


def term_score(weight: np.ndarray | float, freq: np.ndarray | int, norm_inverse: np.ndarray | float) -> np.ndarray:
    """BM25Scorer.doScore: weight - weight / (1 + freq * normInverse), float32 throughout."""
    weight = np.asarray(weight, dtype=F32)
    x = np.asarray(freq, dtype=F32) * np.asarray(norm_inverse, dtype=F32)
    return weight - weight / (F32(1) + x)


def doc_score(term_scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """A document's score: double sum of its float32 term scores, cast to float32."""
    return np.asarray(term_scores, dtype=F32).astype(np.float64).sum(axis=axis).astype(F32)


def anserini_adjusted_scores(scores: np.ndarray) -> np.ndarray:
    """The scores pyserini reports: Anserini's ScoreTiesAdjusterReranker on a ranked list.

    Each score is rounded to 4 decimals (``Math.round(s * 1e4) / 1e4`` in double, stored as
    float32); a hit within 1e-4f of the previous (already adjusted) one is lowered by
    ``1e-6f * n`` (float32) for the ``n``-th hit of the run, so that external tools keep
    Lucene's order (adjusted scores can still be equal: never re-sort them).
    The order is unchanged. Matches pyserini 1.6.0's output bit for bit (tests).
    """
    src = np.asarray(scores, dtype=F32)
    out = np.empty_like(src)
    dup = 0
    for i, s in enumerate(src):
        rounded = F32(np.floor(np.float64(s) * 1e4 + 0.5) / 1e4)  # Java Math.round(double) = floor(x + 0.5)
        if i == 0 or out[i - 1] - rounded > F32(1e-4):  # float32 arithmetic from here on
            dup = 0
        else:
            dup += 1
            rounded = rounded - F32(1e-6) * F32(dup)
        out[i] = rounded
    return out


__all__ = [
    "LENGTH_TABLE",
    "anserini_adjusted_scores",
    "avg_field_length",
    "byte4_to_int",
    "doc_score",
    "idf",
    "int_to_byte4",
    "norm_inverse_cache",
    "term_score",
    "term_weight",
]
