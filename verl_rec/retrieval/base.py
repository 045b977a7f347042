"""One retriever interface shared by every backend (Lucene, bm25s, dense).

A retriever takes a batch of plain-text queries and returns, per query, the ranked
document ids with their scores. Backends must never raise on hostile query text
(empty, huge, Lucene syntax, control characters, any script): such a query yields a
possibly empty ranking. Errors that are not about the query (missing index, dead JVM)
do raise, so that the caller can count them as retrieval errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SearchHits:
    """Ranked result of one query: best first."""

    ids: list[str]
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.ids)


class Retriever(ABC):
    """Batch of queries in, ranked document ids out."""

    #: short backend name used in logs and index metadata ("lucene", "bm25s", "dense")
    name: str = "retriever"

    @abstractmethod
    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """Return the top-``k`` hits of every query, in input order."""

    def warmup(self) -> None:
        """Pay one-off costs (JIT, JVM class loading, page cache) before the first real call."""
        self.search(["warm up query"], k=10)

    def close(self) -> None:
        """Release engine resources. Safe to call twice."""

    def __enter__(self) -> "Retriever":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
