"""Rank metrics: nDCG@k, Recall@k and MRR@k of a ranked id list against ``{id: gain}`` qrels.

Conventions (those of trec_eval, against which the tests check every metric):

* **Linear gain**: ``DCG@k = sum_{i=1..k} gain(d_i) / log2(i + 1)`` with ranks from 1.
  Graded labels are used as given (e.g. ESCI E=3, S=2, C=1, I=0); binary qrels are gain 1.
* A document is **relevant** when its gain is > 0; ids absent from the qrels have gain 0.
* The **ideal DCG** takes each relevant id once (qrels are a mapping, so a target listed
  twice cannot inflate it: the Rec-R1 code's defect 3), gains sorted descending, cut at k.
* A ranking's **repeated ids count at their first position only**; later copies are removed
  before the cut at k (a re-ranked list that repeats an item cannot score twice).
* No relevant document in the qrels: every metric is 0.

``Qrels`` may be given as a mapping ``{id: gain}`` or as an iterable of ids (binary); see
:mod:`verl_rec.qrels` (re-exported here: ``as_qrels``).
The ``*_batch`` helpers take lists and return float64 arrays; they share the per-query
kernel, which only looks at the first ``k`` distinct ids and the positions of the hits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache

import numpy as np

from verl_rec.qrels import Qrels, as_qrels


@lru_cache(maxsize=32)
def _discounts(k: int) -> tuple[float, ...]:
    """``1 / log2(rank + 1)`` for ranks 1..k (cached: k is one of a few cutoffs).

    Python floats, not an array: a reward has a handful of hits, and numpy's per-call cost
    was most of the reward worker's time per sample."""
    return tuple((1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))).tolist())


def hit_positions(ranking: Sequence[str], qrels: Mapping[str, float], k: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based positions (within the first ``k`` distinct ids) of relevant ids, and their gains."""
    positions: list[int] = []
    gains: list[float] = []
    seen: set[str] = set()
    position = 0
    for doc in ranking:
        if position >= k:
            break
        if doc in seen:
            continue
        seen.add(doc)
        gain = qrels.get(doc, 0.0)
        if gain > 0:
            positions.append(position)
            gains.append(gain)
        position += 1
    return np.asarray(positions, dtype=np.int64), np.asarray(gains, dtype=np.float64)


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"cutoff k must be a positive integer, got {k!r}")
    return int(k)


def ndcg_from_positions(positions: Sequence[int], gains: Sequence[float], ideal_gains: Sequence[float], k: int) -> float:
    """nDCG@k from 0-based hit positions (< k) and their gains; ``ideal_gains`` are the positive
    qrels gains, any order."""
    hits = sorted(zip(map(int, positions), map(float, gains)))
    return _ndcg_sorted(hits, sorted(map(float, ideal_gains), reverse=True), k)


def _positive_gains(qrels: Mapping[str, float]) -> np.ndarray:
    return np.fromiter((g for g in qrels.values() if g > 0), dtype=np.float64)


def ndcg_at_k(ranking: Sequence[str], targets: Qrels, k: int) -> float:
    """Normalised DCG of the first ``k`` distinct ids (linear gain)."""
    k = _check_k(k)
    qrels = as_qrels(targets)
    positions, gains = hit_positions(ranking, qrels, k)
    return ndcg_from_positions(positions, gains, _positive_gains(qrels), k)


def recall_at_k(ranking: Sequence[str], targets: Qrels, k: int) -> float:
    """Share of the relevant ids found among the first ``k`` distinct ids."""
    k = _check_k(k)
    qrels = as_qrels(targets)
    n_relevant = sum(1 for g in qrels.values() if g > 0)
    if n_relevant == 0:
        return 0.0
    positions, _ = hit_positions(ranking, qrels, k)
    return positions.size / n_relevant


def mrr_at_k(ranking: Sequence[str], targets: Qrels, k: int) -> float:
    """Reciprocal rank of the first relevant id within the first ``k`` distinct ids."""
    k = _check_k(k)
    positions, _ = hit_positions(ranking, as_qrels(targets), k)
    return 1.0 / (positions[0] + 1) if positions.size else 0.0


MetricFn = Callable[[Sequence[str], Qrels, int], float]

METRICS: dict[str, MetricFn] = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def parse_metric(spec: str) -> tuple[str, int]:
    """``"ndcg@1000"`` -> ``("ndcg", 1000)``; fails with the accepted names otherwise."""
    return _parse_metric(str(spec))


@lru_cache(maxsize=256)
def _parse_metric(spec: str) -> tuple[str, int]:  # cached: the reward parses the same few specs per sample
    name, sep, cutoff = spec.strip().lower().partition("@")
    if not sep or name not in METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(f"metric {spec!r} is not of the form <name>@<k> with name in {sorted(METRICS)} and k >= 1")
    return name, int(cutoff)


def first_positions(ranking: Sequence[str], wanted: Iterable[str], k: int) -> dict[str, int]:
    """0-based position of each wanted id among the first ``k`` distinct ids of ``ranking``."""
    wanted = set(wanted)
    found: dict[str, int] = {}
    seen: set[str] = set()
    for doc in ranking:
        if len(seen) >= k:
            break
        if doc in seen:
            continue
        if doc in wanted:
            found[doc] = len(seen)
        seen.add(doc)
    return found


def evaluate_positions(found: Mapping[str, int], targets: Qrels, specs: Iterable[str]) -> dict[str, float]:
    """Metrics from the positions of the targets alone (the retrieval service's fast path).

    ``found`` maps a target id to its 0-based position among the distinct ids of a ranking
    at least as deep as every cutoff in ``specs``; targets missing from it were not retrieved.
    Gives exactly the values of :func:`evaluate` on the full ranking. Runs for every sample of
    every step, so the hits and the ideal gains are sorted once for all ``specs``.
    """
    qrels = as_qrels(targets)
    relevant = {doc: g for doc, g in qrels.items() if g > 0}
    hits = sorted((pos, relevant[doc]) for doc, pos in found.items() if doc in relevant)
    ideal = sorted(relevant.values(), reverse=True)
    out: dict[str, float] = {}
    for spec in specs:
        name, k = parse_metric(spec)
        if name == "ndcg":
            out[spec] = _ndcg_sorted(hits, ideal, k)
        elif name == "recall":
            out[spec] = sum(1 for p, _ in hits if p < k) / len(relevant) if relevant else 0.0
        else:
            out[spec] = 1.0 / (hits[0][0] + 1) if hits and hits[0][0] < k else 0.0
    return out


def _ndcg_sorted(hits: Sequence[tuple[int, float]], ideal: Sequence[float], k: int) -> float:
    """nDCG@k from ``(position, gain)`` hits sorted by position and the positive gains sorted
    descending: :func:`ndcg_from_positions` without re-sorting for every cutoff."""
    if not ideal:
        return 0.0
    discounts = _discounts(k)
    dcg = 0.0
    for position, gain in hits:
        if position >= k:
            break
        dcg += gain * discounts[position]
    idcg = 0.0
    for gain, discount in zip(ideal, discounts):
        idcg += gain * discount
    return dcg / idcg


def evaluate(ranking: Sequence[str], targets: Qrels, specs: Iterable[str]) -> dict[str, float]:
    """Every metric of ``specs`` (e.g. ``["ndcg@10", "recall@100"]``) for one ranking."""
    specs = list(specs)
    qrels = as_qrels(targets)
    depth = max((parse_metric(spec)[1] for spec in specs), default=1)
    return evaluate_positions(first_positions(ranking, qrels, depth), qrels, specs)


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
