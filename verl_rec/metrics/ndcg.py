"""nDCG@k with linear gain, as trec_eval computes it (Järvelin and Kekäläinen, 2002).

``DCG@k = sum_{i=1..k} gain(d_i) / log2(i + 1)`` with ranks from 1, and nDCG@k = DCG@k / IDCG@k.
The **ideal DCG** takes each relevant id once (qrels are a mapping, so a target listed twice
cannot inflate it: the Rec-R1 code's defect 3), gains sorted descending, cut at k.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from verl_rec.metrics.positions import check_cutoff, hit_positions, positive_gains
from verl_rec.qrels import Qrels, as_qrels


@lru_cache(maxsize=32)
def discounts(k: int) -> tuple[float, ...]:
    """``1 / log2(rank + 1)`` for ranks 1..k, cached (k is one of a few cutoffs), as Python
    floats: a reward has a handful of hits, and numpy's per-call cost would dominate."""
    return tuple((1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))).tolist())


def ndcg_sorted(hits: Sequence[tuple[int, float]], ideal: Sequence[float], k: int) -> float:
    """nDCG@k from ``(position, gain)`` hits sorted by position and the positive gains sorted
    descending (sorted once, then cut at every cutoff)."""
    if not ideal:
        return 0.0
    weights = discounts(k)
    dcg = 0.0
    for position, gain in hits:
        if position >= k:
            break
        dcg += gain * weights[position]
    idcg = 0.0
    for gain, weight in zip(ideal, weights):
        idcg += gain * weight
    return dcg / idcg


def ndcg_from_positions(positions: Sequence[int], gains: Sequence[float], ideal_gains: Sequence[float], k: int) -> float:
    """nDCG@k from 0-based hit positions (< k) and their gains; ``ideal_gains`` are the positive
    qrels gains, any order."""
    hits = sorted(zip(map(int, positions), map(float, gains)))
    return ndcg_sorted(hits, sorted(map(float, ideal_gains), reverse=True), k)


def ndcg_at_k(ranking: Sequence[str], targets: Qrels, k: int) -> float:
    """Normalised DCG of the first ``k`` distinct ids (linear gain)."""
    k = check_cutoff(k)
    qrels = as_qrels(targets)
    positions, gains = hit_positions(ranking, qrels, k)
    return ndcg_from_positions(positions, gains, positive_gains(qrels), k)
