"""List-at-a-time metrics: one float64 array for many (ranking, targets) pairs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verl_rec.metrics.mrr import mrr_at_k
from verl_rec.metrics.ndcg import ndcg_at_k
from verl_rec.metrics.recall import recall_at_k
from verl_rec.metrics.specs import MetricFn
from verl_rec.qrels import Qrels


def _batch(fn: MetricFn, rankings: Sequence[Sequence[str]], targets: Sequence[Qrels], k: int) -> np.ndarray:
    if len(rankings) != len(targets):
        raise ValueError(f"{len(rankings)} rankings but {len(targets)} target sets")
    return np.fromiter((fn(r, t, k) for r, t in zip(rankings, targets)), dtype=np.float64, count=len(rankings))


def ndcg_at_k_batch(rankings: Sequence[Sequence[str]], targets: Sequence[Qrels], k: int) -> np.ndarray:
    """nDCG@k of every (ranking, targets) pair."""
    return _batch(ndcg_at_k, rankings, targets, k)


def recall_at_k_batch(rankings: Sequence[Sequence[str]], targets: Sequence[Qrels], k: int) -> np.ndarray:
    """Recall@k of every (ranking, targets) pair."""
    return _batch(recall_at_k, rankings, targets, k)


def mrr_at_k_batch(rankings: Sequence[Sequence[str]], targets: Sequence[Qrels], k: int) -> np.ndarray:
    """MRR@k of every (ranking, targets) pair."""
    return _batch(mrr_at_k, rankings, targets, k)
