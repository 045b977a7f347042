"""Paired bootstrap over queries: is one system's per-query score really above another's?

Used by the quickstart's final line and by ``python -m bench.learn``: a mean difference over
40 held-out queries is noisy, so the 95% interval from resampling the queries says whether
the gain is real (its lower end above 0).
"""

from __future__ import annotations

from collections.abc import Mapping


def paired_bootstrap(a: Mapping[str, float], b: Mapping[str, float], resamples: int = 10_000,
                     seed: int = 0) -> dict[str, float]:
    """Mean of a - b over the shared queries, with a 95% percentile interval from resampling queries."""
    import numpy as np

    queries = sorted(set(a) & set(b))
    if not queries:
        raise ValueError("paired_bootstrap: the two systems share no query")
    diff = np.array([a[q] - b[q] for q in queries])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean_difference": float(diff.mean()), "ci95_low": float(low), "ci95_high": float(high),
            "queries": len(queries), "wins": int((diff > 1e-12).sum()), "losses": int((diff < -1e-12).sum()),
            "ties": int((np.abs(diff) <= 1e-12).sum())}


def mean_interval(values: Mapping[str, float], resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Mean over queries with its 95% bootstrap interval."""
    import numpy as np

    x = np.array(list(values.values()))
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(x.mean()), "ci95_low": float(low), "ci95_high": float(high)}
