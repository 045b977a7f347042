"""A validation metric over queries, from veRL's step metrics.

veRL logs one mean per data source (``val-aux/<data_source>/ndcg@10/mean@1``). Averaging those
weights a domain of 2 queries like one of 20; the mean over queries, which is what a raw-query
baseline or ``verl_rec.evaluate`` reports, weights each domain by its number of rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

PREFIXES = ("val-core/", "val-aux/")


def data_source_counts(records_parquet: str | Path, limit: int | None = None) -> Counter[str]:
    """Rows per data source among the first ``limit`` rows (veRL's ``data.val_max_samples``)."""
    import pandas as pd

    sources = pd.read_parquet(records_parquet, columns=["data_source"])["data_source"]
    return Counter(sources.iloc[:limit] if limit else sources)


def per_source(metrics: Mapping[str, float], suffix: str) -> dict[str, float]:
    """``{data_source: value}`` of the validation keys that end with ``suffix`` (e.g. ``/ndcg@10/mean@1``)."""
    found = {}
    for key, value in metrics.items():
        for prefix in PREFIXES:
            if key.startswith(prefix) and key.endswith(suffix):
                found[key[len(prefix) : len(key) - len(suffix)]] = float(value)
    return found


def validation_mean(metrics: Mapping[str, float], suffix: str, counts: Mapping[str, int] | None = None) -> float | None:
    """The mean over queries when ``counts`` (rows per data source) is given, else over data
    sources; None when the step logged no such key. A data source without a count fails."""
    values = per_source(metrics, suffix)
    if not values:
        return None
    if counts is None:
        return sum(values.values()) / len(values)
    missing = sorted(set(values) - set(counts))
    if missing:
        raise KeyError(f"validation metrics name data sources {missing} that the row counts {dict(counts)} lack")
    total = sum(counts[source] for source in values)
    return sum(value * counts[source] for source, value in values.items()) / total
