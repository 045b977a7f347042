"""Several metrics of one ranking at once, from the positions of its targets alone.

The reward needs only where the targets rank (the retrieval service's fast path), so
:func:`evaluate_positions` sorts the hits and the ideal gains once for every spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from verl_rec.metrics.ndcg import ndcg_sorted
from verl_rec.metrics.positions import first_positions
from verl_rec.metrics.specs import parse_metric
from verl_rec.qrels import Qrels, as_qrels


def evaluate_positions(found: Mapping[str, int], qrels: Mapping[str, float], specs: Iterable[str]) -> dict[str, float]:
    """Metrics from the positions of the targets alone; exactly :func:`evaluate` on the full ranking.

    Args:
        found: a target id -> its 0-based position among the distinct ids of a ranking at least
            as deep as every cutoff in ``specs``; targets missing from it were not retrieved.
        qrels: ``{id: gain}`` as :func:`verl_rec.qrels.parse_qrels` returns it (parsed once at
            the edge: this runs for every sample of every step).
        specs: ``<name>@<k>`` metric specs.
    """
    relevant = {doc: g for doc, g in qrels.items() if g > 0}
    hits = sorted((pos, relevant[doc]) for doc, pos in found.items() if doc in relevant)
    ideal = sorted(relevant.values(), reverse=True)
    out: dict[str, float] = {}
    for spec in specs:
        name, k = parse_metric(spec)
        if name == "ndcg":
            out[spec] = ndcg_sorted(hits, ideal, k)
        elif name == "recall":
            out[spec] = sum(1 for p, _ in hits if p < k) / len(relevant) if relevant else 0.0
        else:
            out[spec] = 1.0 / (hits[0][0] + 1) if hits and hits[0][0] < k else 0.0
    return out


def evaluate(ranking: Sequence[str], targets: Qrels, specs: Iterable[str]) -> dict[str, float]:
    """Every metric of ``specs`` (e.g. ``["ndcg@10", "recall@100"]``) for one ranking."""
    specs = list(specs)
    qrels = as_qrels(targets)
    depth = max((parse_metric(spec)[1] for spec in specs), default=1)
    return evaluate_positions(first_positions(ranking, qrels, depth), qrels, specs)
