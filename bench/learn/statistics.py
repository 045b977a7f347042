"""Per-query rows of ``verl_rec.evaluate`` and paired bootstrap intervals over queries."""

from __future__ import annotations

import csv
from pathlib import Path


def read_per_query(path: Path) -> dict[str, dict[str, float]]:
    """``{system: {query record id: NDCG@10}}``; a sampled system's rows are averaged per query."""
    sums: dict[str, dict[str, list[float]]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            record = row["record_id"].split("#")[0]
            sums.setdefault(row["system"], {}).setdefault(record, []).append(float(row["ndcg@10"]))
    return {system: {q: sum(v) / len(v) for q, v in rows.items()} for system, rows in sums.items()}


def paired_bootstrap(a: dict[str, float], b: dict[str, float], resamples: int, seed: int) -> dict[str, float]:
    """Mean of a - b over the shared queries, with a 95% percentile interval from resampling queries."""
    import numpy as np

    queries = sorted(set(a) & set(b))
    diff = np.array([a[q] - b[q] for q in queries])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean_difference": float(diff.mean()), "ci95_low": float(low), "ci95_high": float(high),
            "queries": len(queries), "wins": int((diff > 1e-12).sum()), "losses": int((diff < -1e-12).sum()),
            "ties": int((np.abs(diff) <= 1e-12).sum())}


def mean_interval(values: dict[str, float], resamples: int, seed: int) -> dict[str, float]:
    """Mean over queries with its 95% bootstrap interval."""
    import numpy as np

    x = np.array(list(values.values()))
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(x.mean()), "ci95_low": float(low), "ci95_high": float(high)}
