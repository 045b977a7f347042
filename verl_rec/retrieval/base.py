"""One retriever interface shared by every backend (Lucene, bm25s, dense).

A retriever takes a batch of plain-text queries and returns, per query, the ranked
document ids with their scores. Backends must never raise on hostile query text
(empty, huge, Lucene syntax, control characters, any script): such a query yields a
possibly empty ranking, or, when the engine itself refuses it (Lucene throwing on the
parsed query), a marked one: ``SearchHits.error`` set in :meth:`Retriever.search`, ``None``
in place of the position map in :meth:`Retriever.target_positions`. The reward counts those
as retrieval errors, never as a silent miss. Errors that are not about one query (missing
index, dead JVM) raise, so that the caller can count them as retrieval errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def is_engine_uri(index_path: object) -> bool:
    """True when ``index_path`` names an engine reached over the network (``http://host:19530``,
    ``https://...``) rather than a local index folder or file: such a location is the same on
    every node, so it is never made absolute and no node needs a copy of it."""
    return "://" in str(index_path)


@dataclass(frozen=True)
class SearchHits:
    """Ranked result of one query: best first. ``error`` says why the engine refused the query
    (the ranking is then empty and is not a result)."""

    ids: list[str]
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    error: str | None = None

    def __len__(self) -> int:
        return len(self.ids)


def check_target_lists(queries: Sequence[str], targets: Sequence[Sequence[str]]) -> None:
    """``target_positions`` takes one target list per query; say so when the lengths differ."""
    if len(targets) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(targets)} target lists")


class Retriever(ABC):
    """Batch of queries in, ranked document ids out."""

    #: short backend name used in logs and index metadata ("lucene", "bm25s", "dense")
    name: str = "retriever"

    @abstractmethod
    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """Return the top-``k`` hits of every query, in input order."""

    def target_positions(self, queries: Sequence[str], k: int,
                         targets: Sequence[Sequence[str]]) -> list[dict[str, int] | None]:
        """Per query, the 0-based rank of each of its ``targets`` in its top ``k`` (absent: not
        there); ``None`` for a query the engine refused.

        This is all a reward needs from a ranking. This default ranks in full and looks the
        targets up (:func:`~verl_rec.metrics.first_positions`); backends override it with a path
        that never materialises the ``k`` id strings, and must return exactly the same positions.
        """
        from verl_rec.metrics import first_positions

        check_target_lists(queries, targets)
        hits = self.search(queries, k)
        return [None if h.error else first_positions(h.ids, wanted, k) for h, wanted in zip(hits, targets)]

    def warmup(self) -> None:
        """Pay one-off costs (JIT, JVM class loading, page cache) before the first real call."""
        self.search(["warm up query"], k=10)

    def close(self) -> None:  # noqa: B027  (optional hook: most engines hold nothing to release)
        """Release engine resources. Safe to call twice."""

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
