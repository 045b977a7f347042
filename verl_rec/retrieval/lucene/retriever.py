"""BM25 top-k over a Lucene index through pyserini's ``LuceneSearcher``: the paper's engine.

Search: queries are passed to Anserini as plain text and analysed exactly like documents
(``BagOfWordsQueryGenerator``: one SHOULD clause per distinct term, boosted by its count in
the query). They are never wrapped in ``contents:`` — the StandardTokenizer keeps
``contents:word`` as ONE token, so that wrapping (the paper's reward code) silently drops the
first query word.

Ranking and ties (read from the bytecode of Anserini 1.7.1's ``SimpleSearcher._search`` and
``ScoreTiesAdjusterReranker``):

1. Lucene collects the top ``k`` by ``Sort(score desc, docid-string asc)``: exact float32 BM25
   ties are broken by the *string* id ascending (byte order: "10" < "9"), also at the cut-off.
2. The returned scores are then rounded to 4 decimals (``round(score * 1e4) / 1e4`` in double,
   cast to float32), and every hit whose rounded score is within 1e-4 of the previous hit's
   (already adjusted) score is lowered by ``1e-6 * n`` (``n``-th tie in a run). The order is
   not changed by this step.

:meth:`LuceneRetriever.search` returns those (rounded) Anserini scores;
:meth:`LuceneRetriever.search_exact` returns the exact float32 Lucene scores in the same order.
``LuceneRetriever(engine="direct")`` gives the same rankings as pyserini's ``batch_search`` with
less pyjnius overhead (see the class docstring). Indexes come from
:func:`~verl_rec.retrieval.lucene.build.build_lucene_index`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from verl_rec.retrieval.base import Retriever, SearchHits, check_target_lists
from verl_rec.retrieval.index_metadata import IndexNotFoundError
from verl_rec.retrieval.lucene.build import is_lucene_index
from verl_rec.retrieval.lucene.java import ensure_java
from verl_rec.retrieval.lucene.java_text import sanitize_text
from verl_rec.retrieval.lucene.jvm_loops import doc_numbers_handle, top_numbers_loop

logger = logging.getLogger(__name__)

#: Lucene's BooleanQuery clause limit (default 1024) is raised to this, JVM-wide, so that a long
#: LLM query is scored as its full bag of words instead of failing with TooManyClauses.
MAX_CLAUSES = 1 << 20
_MAX_K = 2**31 - 1
_EMPTY = SearchHits(ids=[], scores=np.zeros(0, dtype=np.float32))


class LuceneRetriever(Retriever):
    """BM25 top-k over a Lucene index via pyserini's ``LuceneSearcher`` (one JVM per process).

    ``engine="pyserini"`` (default) calls ``LuceneSearcher.batch_search``; Anserini 1.7.1 runs
    such a batch on ``Executors.newWorkStealingPool()``, i.e. on all cores whatever ``threads``
    says. Most of its cost is pyjnius turning every hit into a Python proxy object.
    ``engine="direct"`` runs the same Anserini steps per query from Python (same query, sort,
    tie adjustment: identical ids and scores, checked in tests) but reads each ranking as two
    Java arrays, which is faster (``python -m bench.profile``).
    :meth:`target_positions` (what the reward service calls) takes the direct path whatever
    ``engine`` says, reads no ids at all, and runs chunks of distinct queries on ``threads``
    threads, one Java call per chunk (pyjnius releases the GIL while Java runs).
    """

    name = "lucene"
    batch_size = 1024  # queries per Java batch call, bounds the JVM's result memory
    chunk_size = 8  # queries per Java call in target_positions: few GIL hand-overs, short tail on the last chunk
    engines = ("pyserini", "direct")

    def __init__(self, index_dir: str | Path, k1: float = 1.2, b: float = 0.75, threads: int = 2, heap: str = "2g",
                 engine: str = "pyserini"):
        self.index_dir = Path(index_dir)
        if not self.index_dir.is_dir():
            raise IndexNotFoundError(f"Lucene index directory {self.index_dir} does not exist; build it with build_lucene_index()")
        if not is_lucene_index(self.index_dir):
            raise IndexNotFoundError(f"{self.index_dir} is not a Lucene index (no segments_N file); build it with build_lucene_index()")
        if engine not in self.engines:
            raise ValueError(f"engine must be one of {self.engines}, got {engine!r}")
        self.k1, self.b, self.threads, self.engine = float(k1), float(b), max(1, int(threads)), engine
        ensure_java(heap)
        from jnius import JavaException, autoclass
        from pyserini.search.lucene import LuceneSearcher

        self._java_exception = JavaException
        autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(MAX_CLAUSES)
        self._searcher = LuceneSearcher(str(self.index_dir))
        self._searcher.set_bm25(self.k1, self.b)
        self.num_docs = int(self._searcher.num_docs)
        self._direct_parts: Any = None  # lazily built Lucene objects for the direct path
        self._java = {"ArrayList": autoclass("java.util.ArrayList"),
                      "IndexReaderUtils": autoclass("io.anserini.index.IndexReaderUtils")}
        self._numbers_handle: Any = None  # (TopDocs) -> int[] of document numbers, see _top_numbers
        self._loops: dict[int, Any] = {}  # k -> top_numbers_loop handle, see target_positions
        self._numbers: dict[str, int] = {}  # document id -> Lucene document number (-1: not indexed)
        self._local = threading.local()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # -- public API ------------------------------------------------------------------------

    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """Top-``k`` BM25 hits per query with Anserini's (4-decimal, tie-adjusted) scores."""
        return self._run(queries, k, exact=False)

    def search_exact(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """Top-``k`` hits with Lucene's exact float32 BM25 scores (before Anserini's rounding).

        Same query, similarity and order as :meth:`search`: score desc, then docid string asc.
        """
        return self._run(queries, k, exact=True)

    def target_positions(self, queries: Sequence[str], k: int,
                         targets: Sequence[Sequence[str]]) -> list[dict[str, int] | None]:
        """Rank of each target in its query's top ``k``, without reading the hits' ids; ``None``
        for a query Lucene refused (logged).

        Same query, sort (score desc, id asc) and cut-off as :meth:`search`, but the top ``k``
        are read back as Java ``int[]`` of Lucene document numbers, and the targets are turned
        into document numbers instead. :meth:`search` loads every hit's stored id
        (``ScoredDocs.fromTopDocs``), which cost more than the search itself at k=1000.
        Distinct queries go to Java in chunks of ``chunk_size``, one call per chunk
        (:func:`top_numbers_loop`), on up to ``threads`` Python threads: pyjnius releases the
        GIL while Java runs. Assumes document ids are unique in the index (as our builders make them).
        """
        self._check_open()
        check_target_lists(queries, targets)
        texts = [sanitize_text(q) for q in queries]
        results: list[dict[str, int] | None] = [{} for _ in texts]
        if k <= 0:
            return results
        unique = [t for t in dict.fromkeys(texts) if t.strip()]
        if not unique:
            return results
        depth = int(min(k, _MAX_K))
        loop = self._top_numbers_loop(depth)  # built once, before any worker thread needs it
        size = max(1, min(self.chunk_size, -(-len(unique) // self.threads)))
        chunks = [unique[i:i + size] for i in range(0, len(unique), size)]
        if self.threads > 1 and len(chunks) > 1:
            docs = [d for part in self._pool().map(lambda chunk: self._top_numbers_chunk(loop, chunk, depth), chunks) for d in part]
        else:
            docs = [d for chunk in chunks for d in self._top_numbers_chunk(loop, chunk, depth)]
        if all(d is None for d in docs):
            self._top_numbers("probe", 1, reraise=True)  # raises if the engine itself is broken
        ranked = dict(zip(unique, docs))
        for j, (text, wanted) in enumerate(zip(texts, targets)):
            numbers = ranked.get(text)
            if numbers is None and text in ranked:  # Lucene refused it: an error, not a miss
                results[j] = None
                continue
            if not numbers:
                continue
            found = {}
            for doc_id in wanted:
                number = self._lucene_number(str(doc_id))
                if number >= 0:
                    try:
                        found[str(doc_id)] = numbers.index(number)
                    except ValueError:
                        pass
            results[j] = found
        return results

    def _top_numbers_chunk(self, loop: Any, texts: list[str], k: int) -> list[list[int] | None]:
        """The top-``k`` document numbers of each text, from ONE Java call (:func:`top_numbers_loop`).

        A text Lucene rejected (``null``) is run again on its own, which logs why.
        """
        lists = getattr(self._local, "lists", None)
        if lists is None:  # one text list and one argument list per thread, reused
            lists = self._local.lists = (self._java["ArrayList"](), self._java["ArrayList"]())
            lists[1].add(lists[0])
        texts_list, args = lists
        texts_list.clear()
        for text in texts:
            texts_list.add(text)
        rows = loop.invokeWithArguments(args)
        return [self._top_numbers(text, k) if row is None else row for text, row in zip(texts, rows)]

    def _top_numbers_loop(self, k: int) -> Any:
        loop = self._loops.get(k)
        if loop is None:
            searcher, sort, generator, analyzer, _, _ = self._parts()
            loop = self._loops[k] = top_numbers_loop(searcher, generator, analyzer, sort, k, self._doc_numbers_of())
        return loop

    def _top_numbers(self, text: str, k: int, reraise: bool = False) -> list[int] | None:
        """Lucene document numbers of the top ``k`` of ``text``, best first (None: Lucene refused it)."""
        searcher, sort, generator, analyzer, _, _ = self._parts()
        try:
            top = searcher.search(generator.buildQuery("contents", analyzer, text), k, sort, True)
            args = getattr(self._local, "args", None)
            if args is None:  # one argument list per thread
                args = self._local.args = self._java["ArrayList"]()
                args.add(None)
            args.set(0, top)
            return list(self._doc_numbers_of().invokeWithArguments(args))
        except self._java_exception as exc:
            if reraise:
                raise
            logger.warning("Lucene rejected query %.80r: %s", text, exc)
            return None

    def _lucene_number(self, doc_id: str) -> int:
        number = self._numbers.get(doc_id)
        if number is None:
            number = int(self._java["IndexReaderUtils"].convertDocidToLuceneDocid(self._searcher.index_reader.reader, doc_id))
            if len(self._numbers) >= 1_000_000:
                self._numbers.clear()
            self._numbers[doc_id] = number
        return number

    def _doc_numbers_of(self) -> Any:
        if self._numbers_handle is None:
            self._numbers_handle = doc_numbers_handle()
        return self._numbers_handle

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="verl-rec-lucene")
        return self._executor

    def _shutdown_pool(self) -> None:
        pool, self._executor = self._executor, None
        if pool is None:
            return
        import jnius

        barrier = threading.Barrier(self.threads)

        def detach() -> None:  # a thread that used the JVM must detach before it ends
            barrier.wait(timeout=30)
            jnius.detach()

        for future in [pool.submit(detach) for _ in range(self.threads)]:
            try:
                future.result(timeout=60)
            except Exception as exc:  # a thread that never ran Java has nothing to detach
                logger.debug("Lucene thread detach: %s", exc)
        pool.shutdown(wait=True)

    def analyze(self, text: str) -> list[str]:
        """The index terms Lucene makes of ``text`` (same analyzer as documents and queries)."""
        self._check_open()
        from jnius import autoclass

        utils = autoclass("io.anserini.analysis.AnalyzerUtils")
        return list(utils.analyze(self._searcher.object.get_analyzer(), sanitize_text(text)).toArray())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._shutdown_pool()
        self._direct_parts = None
        for closer in (self._searcher.close, self._searcher.index_reader.reader.close):
            try:
                closer()
            except Exception as exc:  # closing twice or a dead JVM: nothing left to release
                logger.debug("ignoring error while closing Lucene searcher: %s", exc)

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"LuceneRetriever over {self.index_dir} is closed")

    def _run(self, queries: Sequence[str], k: int, exact: bool) -> list[SearchHits]:
        self._check_open()
        texts = [sanitize_text(q) for q in queries]
        results = [_EMPTY] * len(texts)
        if k <= 0:
            return results
        todo = [i for i, t in enumerate(texts) if t.strip()]  # blank queries match nothing anyway
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            chunk_texts = [texts[i] for i in chunk]
            if exact or self.engine == "direct":
                hits = self._search_each(chunk_texts, k, exact)
            else:
                hits = self._search_batch(chunk_texts, k)
            for i, h in zip(chunk, hits):
                results[i] = h
        return results

    def _search_batch(self, texts: list[str], k: int) -> list[SearchHits]:
        qids = [str(i) for i in range(len(texts))]
        try:
            found = self._searcher.batch_search(texts, qids, k=int(min(k, _MAX_K)), threads=self.threads)
        except self._java_exception as exc:
            logger.warning("Lucene batch of %d queries failed (%s); retrying one query at a time", len(texts), exc)
            return self._search_each(texts, k, exact=False)
        return [self._to_hits(found.get(qid, ())) for qid in qids]

    def _search_each(self, texts: list[str], k: int, exact: bool) -> list[SearchHits]:
        """One Java call chain per query; a query Lucene rejects gets an empty ranking marked with
        the error (:attr:`SearchHits.error`)."""
        hits, failures = [], 0
        for text in texts:
            try:
                hits.append(self._search_direct(text, k, exact))
            except self._java_exception as exc:
                logger.warning("Lucene rejected query %.80r: %s", text, exc)
                hits.append(SearchHits(ids=[], scores=np.zeros(0, dtype=np.float32), error=f"Lucene rejected the query: {exc}"))
                failures += 1
        if texts and failures == len(texts):
            self._search_direct("probe", 1, exact)  # raises if the engine itself is broken, not the queries
        return hits

    def _search_direct(self, text: str, k: int, exact: bool) -> SearchHits:
        """Anserini's ``SimpleSearcher._search`` for BM25 without RM3, read back as arrays."""
        searcher, sort, generator, analyzer, scored_docs, adjuster = self._parts()
        query = generator.buildQuery("contents", analyzer, text)
        docs = scored_docs.fromTopDocs(searcher.search(query, int(min(k, _MAX_K)), sort, True), searcher)
        if not exact:
            adjuster.rerank(docs, None)  # 4-decimal rounding and tie perturbation, in place
        return SearchHits(ids=list(docs.docids), scores=np.asarray(docs.scores, dtype=np.float32))

    @staticmethod
    def _to_hits(docs: Any) -> SearchHits:
        ids, scores = [], []
        for doc in docs:
            ids.append(doc.docid)
            scores.append(doc.score)
        return SearchHits(ids=ids, scores=np.asarray(scores, dtype=np.float32))

    def _parts(self) -> tuple[Any, ...]:
        if self._direct_parts is None:
            from jnius import autoclass

            sort_field = autoclass("org.apache.lucene.search.SortField")
            sort_type = autoclass("org.apache.lucene.search.SortField$Type")
            searcher = autoclass("org.apache.lucene.search.IndexSearcher")(self._searcher.index_reader.reader)
            searcher.setSimilarity(autoclass("org.apache.lucene.search.similarities.BM25Similarity")(self.k1, self.b))
            self._direct_parts = (
                searcher,
                autoclass("org.apache.lucene.search.Sort")(sort_field.FIELD_SCORE, sort_field("id", sort_type.STRING_VAL)),
                autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")(),
                self._searcher.object.get_analyzer(),
                autoclass("io.anserini.search.ScoredDocs"),
                autoclass("io.anserini.rerank.lib.ScoreTiesAdjusterReranker")(),
            )
        return self._direct_parts
