"""Metric specs ``<name>@<k>`` (``"ndcg@1000"``), as recipes and the evaluation CLI write them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from verl_rec.metrics.mrr import mrr_at_k
from verl_rec.metrics.ndcg import ndcg_at_k
from verl_rec.metrics.recall import recall_at_k
from verl_rec.qrels import Qrels

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
