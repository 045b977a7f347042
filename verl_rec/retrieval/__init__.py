"""The environment: retrievers over a fixed corpus. Knows nothing of veRL or LLMs."""

from verl_rec.retrieval.base import Retriever, SearchHits

__all__ = ["Retriever", "SearchHits"]
