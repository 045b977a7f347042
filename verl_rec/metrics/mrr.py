"""MRR@k: ``1 / rank`` of the first relevant id within the first k distinct ids, 0 if none
(trec_eval's ``recip_rank`` cut at k)."""

from __future__ import annotations

from collections.abc import Sequence

from verl_rec.metrics.positions import check_cutoff, hit_positions
from verl_rec.qrels import Qrels, as_qrels


def mrr_at_k(ranking: Sequence[str], targets: Qrels, k: int) -> float:
    """Reciprocal rank of the first relevant id within the first ``k`` distinct ids."""
    k = check_cutoff(k)
    positions, _ = hit_positions(ranking, as_qrels(targets), k)
    return 1.0 / (positions[0] + 1) if positions.size else 0.0
