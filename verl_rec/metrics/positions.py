"""Where the relevant ids rank: the kernels every metric shares (first ``k`` distinct ids only)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def check_cutoff(k: int) -> int:
    """``k`` as an int; a cutoff that is not a positive integer is a caller's bug."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"cutoff k must be a positive integer, got {k!r}")
    return int(k)


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


def positive_gains(qrels: Mapping[str, float]) -> np.ndarray:
    """The gains of the relevant ids, any order."""
    return np.fromiter((g for g in qrels.values() if g > 0), dtype=np.float64)
