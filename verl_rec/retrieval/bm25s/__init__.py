"""In-process BM25 over a bm25s sparse index, with Lucene's exact scores and order, no JVM.

* :mod:`.build`: corpus JSONL -> bm25s index (+ Lucene-exact arrays);
* :mod:`.retriever`: :class:`~.retriever.Bm25sRetriever`, top-k and target positions;
* :mod:`.kernels`: the numba (parallel) and numpy (reference) top-k kernels;
* :mod:`.lucene_scoring`: Lucene 9.9.1's BM25 arithmetic as small pure functions;
* :mod:`.lucene_analyzer`: Anserini's default English analyzer, reimplemented, built from
  :mod:`.standard_tokenizer` (Lucene's ``StandardTokenizer``) and :mod:`.porter_stemmer`
  (Lucene's Porter stemmer).

Inside this subpackage ``import bm25s`` is the third-party package (absolute imports).
"""
