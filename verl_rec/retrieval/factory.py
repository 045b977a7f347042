"""Open a retriever by backend name, so configs (recipes, reward kwargs) stay plain data."""

from __future__ import annotations

from typing import Any

from verl_rec.retrieval.base import Retriever

BACKENDS = ("lucene", "bm25s")


def open_retriever(backend: str, index_path: str, **options: Any) -> Retriever:
    """Return a ready retriever; unknown backends and bad paths fail with what to do."""
    if backend == "lucene":
        from verl_rec.retrieval.lucene import LuceneRetriever

        return LuceneRetriever(index_path, **options)
    if backend == "bm25s":
        from verl_rec.retrieval.bm25s_backend import Bm25sRetriever

        return Bm25sRetriever(index_path, **options)
    raise ValueError(f"unknown retrieval backend {backend!r}; choose one of {BACKENDS}")
