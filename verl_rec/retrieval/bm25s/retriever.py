"""In-process BM25 over a bm25s sparse index: no JVM, many times the queries/s of pyserini.

Reads an index from :func:`~verl_rec.retrieval.bm25s.build.build_bm25s_index` (memory-mapped)
and ranks with :mod:`~verl_rec.retrieval.bm25s.kernels`: only documents containing a query
term, ordered by score descending then document id string ascending (Anserini's
``Sort(score, id)``, ties at the cut-off included). With a Lucene-exact index the scores are
Lucene's exact float32 ones: a query term repeated ``n`` times is Anserini's clause boost ``n``;
for powers of two ``n * score`` is exact, other boosts are recomputed from the stored term
frequency and norm byte, so they are exact too (pyserini additionally rounds what it reports,
see :func:`~verl_rec.retrieval.bm25s.lucene_scoring.anserini_adjusted_scores`). Its speed
against ``bm25s.retrieve``: docs/performance.md.

``import bm25s`` here is the third-party package (absolute import), not this subpackage.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verl_rec.retrieval.base import Retriever, SearchHits, check_target_lists
from verl_rec.retrieval.bm25s import kernels
from verl_rec.retrieval.bm25s import lucene_scoring as lx
from verl_rec.retrieval.bm25s.build import DOC_IDS, DOC_RANK, FORMAT_VERSION, IDF, NORMS, TF
from verl_rec.retrieval.bm25s.lucene_analyzer import ANALYZER_NAME, LuceneEnglishAnalyzer
from verl_rec.retrieval.index_metadata import (
    IndexCorruptError,
    IndexMismatchError,
    check_built_with,
    load_index_metadata,
)

logger = logging.getLogger(__name__)

_OUT_BUDGET = 1 << 24  # (query, hit) slots per kernel call: bounds memory for huge k
_EMPTY = SearchHits(ids=[], scores=np.zeros(0, dtype=np.float32))
_BUILD_HINT = "build_bm25s_index()"


class Bm25sRetriever(Retriever):
    """BM25 top-k from a :func:`build_bm25s_index` index, in this process.

    ``backend``: ``"numba"`` (parallel over queries with ``threads`` threads), ``"numpy"``
    (slow reference), or ``"auto"`` (numba when importable). ``k1``/``b``/``lucene_exact``/
    ``corpus_path``, when given, must match how the index was built (else
    :class:`~verl_rec.retrieval.index_metadata.IndexMismatchError`): a reward must not silently
    run on another engine setting.
    Thread-safe: kernel calls are serialized (numba's default threading layer aborts the
    process on concurrent parallel launches).
    """

    name = "bm25s"
    backends = ("auto", "numba", "numpy")

    def __init__(self, index_dir: str | Path, threads: int | None = None, backend: str = "auto", mmap: bool = True,
                 k1: float | None = None, b: float | None = None, lucene_exact: bool | None = None,
                 corpus_path: str | Path | None = None):
        import bm25s

        if backend not in self.backends:
            raise ValueError(f"backend must be one of {self.backends}, got {backend!r}")
        if backend == "numba" and not kernels.numba_available():
            raise ImportError("backend='numba' needs the numba package (pip install numba), or use backend='auto'")
        self.index_dir = Path(index_dir)
        self.meta = load_index_metadata(self.index_dir, "bm25s", FORMAT_VERSION, _BUILD_HINT)
        _check_settings(self.meta, self.index_dir, k1=k1, b=b, lucene_exact=lucene_exact,
                        corpus_path=str(corpus_path) if corpus_path is not None else None)
        self.backend = "numba" if backend == "numba" or (backend == "auto" and kernels.numba_available()) else "numpy"
        self.threads = max(1, int(threads if threads is not None else (os.cpu_count() or 1)))
        self.lucene_exact = bool(self.meta["lucene_exact"])
        self.k1, self.b = float(self.meta["k1"]), float(self.meta["b"])

        try:
            model = bm25s.BM25.load(self.index_dir, mmap=mmap, backend="numpy", show_progress=False)
            self._ids = np.array(json.loads((self.index_dir / DOC_IDS).read_text(encoding="utf-8")), dtype=object)
            mode = "r" if mmap else None
            self._doc_rank = np.load(self.index_dir / DOC_RANK, mmap_mode=mode)
            if self.lucene_exact:
                self._tf = np.load(self.index_dir / TF, mmap_mode=mode)
                self._norms = np.load(self.index_dir / NORMS)
                self._idf = np.load(self.index_dir / IDF)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"bm25s index {self.index_dir} is incomplete or corrupt ({exc}); rebuild it") from exc
        self._vocab: dict[str, int] = model.vocab_dict
        scores = model.scores
        self._indptr = np.asarray(scores["indptr"])
        self._indices = np.asarray(scores["indices"])
        self._data = np.asarray(scores["data"])
        self.num_docs = int(self.meta["num_docs"])
        if self.lucene_exact:
            avgdl = lx.avg_field_length(self.meta["sum_total_term_freq"], self.meta["doc_count"])
            self._cache = lx.norm_inverse_cache(self.k1, self.b, avgdl)
        else:  # unused by the kernels, but typed like the exact arrays so one compiled kernel serves both
            self._tf = np.zeros(1, dtype=np.uint16)
            self._norms = np.zeros(self.num_docs, dtype=np.uint8)
            self._idf = np.zeros(len(self._indptr) - 1, dtype=np.float32)
            self._cache = np.zeros(256, dtype=np.float32)
        self._check_shapes()
        self._doc_of_rank = np.empty(self.num_docs, dtype=np.int32)
        self._doc_of_rank[np.asarray(self._doc_rank, dtype=np.int64)] = np.arange(self.num_docs, dtype=np.int32)
        self._analyzer = LuceneEnglishAnalyzer()
        self._sorted_ids: Any = None  # ids in string order, built on the first target_positions call
        self._id_order: Any = None
        self._unique_ids = True
        self._lock = threading.Lock()
        self._closed = False
        # the numba kernel's per-thread scratch rows (n_docs each), made on first use and kept
        self._acc_rows = np.zeros((0, self.num_docs), dtype=np.float64)
        self._touched_rows = np.zeros((0, self.num_docs), dtype=np.int32)

    def _check_shapes(self) -> None:
        n_terms = len(self._indptr) - 1
        problems = []
        if len(self._ids) != self.num_docs or len(self._doc_rank) != self.num_docs:
            problems.append(f"{len(self._ids)} ids / {len(self._doc_rank)} ranks for {self.num_docs} documents")
        if n_terms != self.meta.get("num_terms") or len(self._vocab) != n_terms:
            problems.append(f"{n_terms} posting lists, {len(self._vocab)} vocabulary entries, "
                            f"{self.meta.get('num_terms')} terms in the metadata")
        if len(self._indices) != len(self._data) or int(self._indptr[-1]) != len(self._data):
            problems.append("posting arrays of different lengths")
        if self.lucene_exact and (len(self._tf) != len(self._data) or len(self._norms) != self.num_docs
                                  or len(self._idf) != n_terms):
            problems.append("Lucene-exact arrays (tf, norms, idf) do not match the postings")
        if problems:
            raise IndexCorruptError(f"bm25s index {self.index_dir} is inconsistent: {'; '.join(problems)}; rebuild it")

    # -- public API ------------------------------------------------------------------------

    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """Top-``k`` hits per query: score desc, then document id asc; only matching documents."""
        if self._closed:
            raise RuntimeError(f"Bm25sRetriever over {self.index_dir} is closed")
        results = [_EMPTY] * len(queries)
        k = min(int(k), self.num_docs)
        if k <= 0 or len(queries) == 0:
            return results
        texts = [_as_text(q) for q in queries]
        unique = list(dict.fromkeys(texts))  # a GRPO group often repeats a query: score it once
        plans = self._plans(unique)
        todo = [i for i, p in enumerate(plans) if len(p[0])]
        found: dict[str, SearchHits] = {}
        step = max(1, _OUT_BUDGET // k)
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            docs, scores, counts = self._run([plans[i] for i in chunk], k)
            for row, i in enumerate(chunk):
                n = int(counts[row])
                found[unique[i]] = SearchHits(ids=self._ids[docs[row, :n]].tolist(), scores=scores[row, :n].copy())
        return [found.get(t, _EMPTY) for t in texts]

    def target_positions(self, queries: Sequence[str], k: int,
                         targets: Sequence[Sequence[str]]) -> list[dict[str, int]]:
        """Rank of each target in its query's top ``k``, from the kernel's document numbers.

        Same kernel and order as :meth:`search`, but the ``k`` id strings are never built: the
        targets are turned into document numbers instead (binary search in the id order).
        """
        if self._closed:
            raise RuntimeError(f"Bm25sRetriever over {self.index_dir} is closed")
        check_target_lists(queries, targets)
        if not self._ids_are_unique():  # positions then count distinct ids: the generic path does that
            return super().target_positions(queries, k, targets)
        results: list[dict[str, int]] = [{} for _ in queries]
        k = min(int(k), self.num_docs)
        if k <= 0 or len(queries) == 0:
            return results
        texts = [_as_text(q) for q in queries]
        unique = list(dict.fromkeys(texts))
        plans = self._plans(unique)
        todo = [i for i, p in enumerate(plans) if len(p[0])]
        rows: dict[str, np.ndarray] = {}
        step = max(1, _OUT_BUDGET // k)
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            docs, _, counts = self._run([plans[i] for i in chunk], k)
            for row, i in enumerate(chunk):
                rows[unique[i]] = docs[row, : int(counts[row])]
        for j, (text, wanted) in enumerate(zip(texts, targets)):
            row = rows.get(text)
            if row is None or not len(wanted):
                continue
            numbers = self._doc_numbers(wanted)
            if not numbers:
                continue
            where = np.flatnonzero(np.isin(row, np.fromiter(numbers, dtype=np.int64, count=len(numbers))))
            results[j] = {numbers[int(row[p])]: int(p) for p in where}
        return results

    def _ids_are_unique(self) -> bool:
        if self._sorted_ids is None:
            order = np.empty(self.num_docs, dtype=np.int64)
            order[np.asarray(self._doc_rank, dtype=np.int64)] = np.arange(self.num_docs, dtype=np.int64)
            self._id_order, self._sorted_ids = order, self._ids[order]
            self._unique_ids = not bool(np.any(self._sorted_ids[1:] == self._sorted_ids[:-1]))
        return self._unique_ids

    def _doc_numbers(self, ids: Sequence[str]) -> dict[int, str]:
        """Document number -> id for the ``ids`` that are in the index."""
        self._ids_are_unique()
        out: dict[int, str] = {}
        for doc_id in ids:
            doc_id = str(doc_id)
            at = int(np.searchsorted(self._sorted_ids, doc_id))
            if at < self.num_docs and self._sorted_ids[at] == doc_id:
                out[int(self._id_order[at])] = doc_id
        return out

    def analyze(self, text: str) -> list[str]:
        """Index terms of ``text`` (the analyzer used for documents and queries)."""
        return self._analyzer(_as_text(text))

    def warmup(self) -> None:
        """Compile the numba kernel (seconds; cached on disk) and touch the memory-mapped arrays."""
        terms = list(self._vocab)[:3]
        if not terms:
            return
        # boosts 1, 2, 3: both the stored-score and the recompute paths run
        plan = (np.asarray([self._vocab[t] for t in terms], dtype=np.int64), np.arange(1, len(terms) + 1))
        self._run([plan], min(10, self.num_docs))

    def close(self) -> None:
        self._closed = True

    # -- internals -------------------------------------------------------------------------

    def _plans(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: known terms (first-occurrence order) and their counts (Anserini's boosts)."""
        try:
            analyzed = self._analyzer.analyze_many(texts)
        except Exception:  # find the culprit(s) one by one below
            analyzed = [self._analyze_or_nothing(t) for t in texts]
        plans = []
        for terms in analyzed:
            counts = Counter(t for t in terms if t in self._vocab)
            plans.append((np.fromiter((self._vocab[t] for t in counts), dtype=np.int64, count=len(counts)),
                          np.fromiter(counts.values(), dtype=np.int64, count=len(counts))))
        return plans

    def _analyze_or_nothing(self, text: str) -> list[str]:
        try:
            return self._analyzer(text)
        except Exception:  # never let odd query text kill a training step; its ranking is just empty
            logger.exception("could not analyze query %.80r; returning no hits for it", text)
            return []

    def _run(self, plans: list[tuple[np.ndarray, np.ndarray]], k: int):
        q_ptr, q_terms, q_boost, q_recompute = kernels.plan_arrays(plans, self.lucene_exact)
        arrays = (self._indptr, self._indices, self._data, self._tf, self._norms, self._cache, self._idf,
                  self._doc_rank)
        if self.backend == "numpy":
            return kernels.search_numpy(q_ptr, q_terms, q_boost, q_recompute, *arrays, k)
        arrays += (self._doc_of_rank,)
        with self._lock:
            threads = min(self.threads, kernels.max_numba_threads())
            if len(self._acc_rows) != threads:  # the kernel indexes these by numba.get_thread_id()
                self._acc_rows = np.zeros((threads, self.num_docs), dtype=np.float64)
                self._touched_rows = np.empty((threads, self.num_docs), dtype=np.int32)
            n_queries = len(plans)
            out_docs = np.zeros((n_queries, k), dtype=np.int32)
            out_scores = np.zeros((n_queries, k), dtype=np.float32)
            out_n = np.zeros(n_queries, dtype=np.int64)
            kernels.run_numba(threads, q_ptr, q_terms, q_boost, q_recompute, *arrays, k, self.num_docs,
                              self._acc_rows, self._touched_rows, out_docs, out_scores, out_n)
            return out_docs, out_scores, out_n


def _check_settings(meta: dict[str, Any], index_dir: Path, **expected: Any) -> None:
    """Refuse an index built by other code or with other settings than ``expected`` (None = any)."""
    if meta.get("analyzer") != ANALYZER_NAME:
        raise IndexMismatchError(f"bm25s index {index_dir} was built with analyzer {meta.get('analyzer')!r} but this "
                                 f"code analyzes queries with {ANALYZER_NAME!r}; rebuild it with {_BUILD_HINT}")
    check_built_with(meta, index_dir, expected, "the retriever was asked for",
                     "rebuild it with build_bm25s_index(..., {key}={want!r}) or point to another index")


def _as_text(query: Any) -> str:
    if query is None:
        return ""
    return query if isinstance(query, str) else str(query)


__all__ = ["Bm25sRetriever"]
