"""Open a retriever by backend name, so configs (recipes, reward kwargs) stay plain data."""

from __future__ import annotations

from typing import Any

from verl_rec.retrieval.base import Retriever

BACKENDS = ("lucene", "bm25s", "dense")


def open_retriever(kind: str, index_path: str, **options: Any) -> Retriever:
    """Return a ready retriever of backend ``kind``; unknown kinds and bad paths fail with what to do.

    ``options`` go to the backend's constructor (``Bm25sRetriever`` has its own ``backend``
    option, numba or numpy, hence ``kind`` here).
    """
    if kind == "lucene":
        from verl_rec.retrieval.lucene import LuceneRetriever

        return LuceneRetriever(index_path, **options)
    if kind == "bm25s":
        from verl_rec.retrieval.bm25s_backend import Bm25sRetriever

        return Bm25sRetriever(index_path, **options)
    if kind == "dense":
        from verl_rec.retrieval.dense import DenseRetriever

        return DenseRetriever(index_path, **options)
    raise ValueError(f"unknown retrieval backend {kind!r}; choose one of {BACKENDS}")
