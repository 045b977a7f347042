"""The environment: retrievers over a fixed corpus. Knows nothing of veRL or LLMs.

* :mod:`.base`: the one :class:`Retriever` interface and :class:`SearchHits`;
* :mod:`.registry`: backends by name (``open_retriever``, ``build_index``, ``register_backend``);
* :mod:`.index_metadata`: the ``verl_rec_index.json`` of every index, and its error family;
* :mod:`.corpus`, :mod:`.trec`: the JSONL corpus format, TREC collections;
* one subpackage per engine family: :mod:`.lucene` (pyserini, the paper's engine),
  :mod:`.bm25s` (in-process, Lucene-exact scores), :mod:`.dense` (encoder + faiss);
* :mod:`.service`: the shared per-node retrieval service (a Ray actor) and its client.
"""

from verl_rec.retrieval.base import Retriever, SearchHits

__all__ = ["Retriever", "SearchHits"]
