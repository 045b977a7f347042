"""Milvus as a retrieval engine: BM25 full-text or dense vectors, embedded (Milvus Lite, started
and owned by the process that opens the index) or remote (a Milvus server or cluster at a URI).

``lite_process``: start/stop the Lite engine; ``connection``: index_path -> client;
``schema``: the collection layout and its manifest; ``build``: corpus -> collection;
``retriever``: the :class:`~verl_rec.retrieval.base.Retriever` over a collection.
"""
