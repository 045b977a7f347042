"""Recall@k: the share of the relevant ids found among the first k distinct ids (trec_eval's
``recall_k``: relevant retrieved in the top k / all relevant)."""

from __future__ import annotations

from collections.abc import Sequence

from verl_rec.metrics.positions import check_cutoff, hit_positions
from verl_rec.qrels import Qrels, as_qrels


def recall_at_k(ranking: Sequence[str], targets: Qrels, k: int) -> float:
    """Share of the relevant ids found among the first ``k`` distinct ids."""
    k = check_cutoff(k)
    qrels = as_qrels(targets)
    n_relevant = sum(1 for g in qrels.values() if g > 0)
    if n_relevant == 0:
        return 0.0
    positions, _ = hit_positions(ranking, qrels, k)
    return positions.size / n_relevant
