"""In-process BM25 over a bm25s sparse index: no JVM, many times the queries/s of pyserini.

Indexing analyzes the corpus with :mod:`verl_rec.retrieval.analysis` (Anserini's default
English analyzer, reimplemented), then stores a bm25s index: one precomputed score per
(term, document) in a CSC matrix, saved and loaded with bm25s' own ``save``/``load``
(memory-mapped). Two scoring modes:

* ``lucene_exact=True`` (default): the stored scores are Lucene 9.9.1's float32 BM25 term
  scores (:mod:`verl_rec.retrieval.lucene_exact`: one-byte length norms, float32 order of
  operations, ``docCount`` = documents with at least one token). Document scores then equal
  what pyserini's ``LuceneSearcher`` computes. A query term repeated ``n`` times is Anserini's
  clause boost ``n``: for powers of two ``n * score`` is exact; other boosts are recomputed
  from the stored term frequency and norm byte, so they are exact too.
* ``lucene_exact=False``: bm25s' own ``method="lucene"`` scores (exact document lengths, mean
  length over all documents), close to Lucene but not equal.

Retrieval reads the same arrays but does not call ``bm25s.BM25.retrieve``: that sums in
float32 (Lucene sums in double, then casts), breaks ties arbitrarily and returns zero-score
documents when fewer than ``k`` match. Our kernels (numba, parallel over queries; or a
numpy reference) return only documents containing a query term, ordered by score
descending then document id string ascending: Anserini's ``Sort(score, id)``, ties at the
cut-off included. Scores are Lucene's exact float32 ones (pyserini additionally rounds what
it reports, see :func:`verl_rec.retrieval.lucene_exact.anserini_adjusted_scores`). On a
harsh synthetic corpus the numba kernel ran at ~0.8x the speed of ``bm25s.retrieve``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from array import array
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from verl_rec.retrieval import lucene_exact as lx
from verl_rec.retrieval.analysis import ANALYZER_NAME, LuceneEnglishAnalyzer
from verl_rec.retrieval.index_meta import METADATA_FILE, index_dir_swap
from verl_rec.retrieval.base import Retriever, SearchHits, check_target_lists
from verl_rec.retrieval.corpus import CorpusError, CorpusFormat, iter_corpus

logger = logging.getLogger(__name__)

INDEX_FORMAT = "verl_rec.bm25s"
FORMAT_VERSION = 1
_DOC_IDS, _DOC_RANK, _TF, _NORMS, _IDF = "doc_ids.json", "doc_rank.npy", "tf.npy", "norms.npy", "idf.npy"
_OUT_BUDGET = 1 << 24  # (query, hit) slots per kernel call: bounds memory for huge k
_EMPTY = SearchHits(ids=[], scores=np.zeros(0, dtype=np.float32))


class Bm25sIndexError(FileNotFoundError):
    """The index directory is missing, incomplete, or not a verl_rec bm25s index."""


class IndexMetadataError(ValueError):
    """The index on disk was built differently from what the caller (or this code) expects."""


# ----------------------------------------------------------------------------------------------
# Indexing
# ----------------------------------------------------------------------------------------------


def _analyze_corpus(corpus_path: Path, fmt: CorpusFormat, progress: bool, batch_size: int):
    """Return (doc ids, vocab, flat term ids, per-doc token counts) of the whole corpus."""
    from tqdm.auto import tqdm

    analyzer = LuceneEnglishAnalyzer()
    ids: list[str] = []
    vocab: dict[str, int] = {}
    tokens, lengths = array("i"), array("q")
    batch: list[str] = []

    def flush() -> None:
        for terms in analyzer.analyze_many(batch):
            tokens.extend([vocab.setdefault(t, len(vocab)) for t in terms])
            lengths.append(len(terms))
        batch.clear()

    for doc_id, text in tqdm(iter_corpus(corpus_path, fmt), desc=f"analyze {corpus_path.name}", unit="doc",
                             disable=not progress):
        ids.append(doc_id)
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    flush()
    return ids, vocab, np.frombuffer(tokens, dtype=np.int32), np.frombuffer(lengths, dtype=np.int64)


def _postings(tokens: np.ndarray, lengths: np.ndarray, num_terms: int):
    """CSC postings sorted by (term, doc): indptr per term, doc indices, term frequencies."""
    num_docs = len(lengths)
    docs = np.repeat(np.arange(num_docs, dtype=np.int64), lengths)
    keys, tf = np.unique(tokens.astype(np.int64) * num_docs + docs, return_counts=True)
    term, doc = np.divmod(keys, num_docs)
    indptr = np.zeros(num_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(term, minlength=num_terms), out=indptr[1:])
    return indptr, doc.astype(np.int32), tf, term


def _doc_rank(ids: list[str]) -> np.ndarray:
    """Rank of each document's id in string order (Lucene's ``SortField.Type.STRING_VAL``)."""
    order = sorted(range(len(ids)), key=ids.__getitem__)  # code point order == UTF-8 byte order
    rank = np.empty(len(ids), dtype=np.int32)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(ids), dtype=np.int32)
    return rank


def build_bm25s_index(
    corpus_path: str | Path,
    index_dir: str | Path,
    fmt: CorpusFormat = CorpusFormat(),
    k1: float = 1.2,
    b: float = 0.75,
    lucene_exact: bool = True,
    progress: bool = True,
    batch_size: int = 10_000,
) -> Path:
    """Analyze a JSONL corpus and save a bm25s index (+ ``verl_rec_index.json``); return its dir.

    An existing verl_rec bm25s index at ``index_dir`` is replaced; any other non-empty
    directory is refused. The metadata file is written last, so a crashed build never loads.
    """
    import bm25s

    if not (np.isfinite(k1) and k1 >= 0) or not 0 <= b <= 1:  # Lucene's BM25Similarity refuses these too
        raise ValueError(f"BM25 needs a finite k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
    corpus_path, index_dir = Path(corpus_path), Path(index_dir)
    if index_dir.exists() and any(index_dir.iterdir()) and not (index_dir / METADATA_FILE).is_file():
        raise FileExistsError(f"{index_dir} exists and is not a verl_rec bm25s index; refusing to write into it")
    started = time.perf_counter()
    ids, vocab, tokens, lengths = _analyze_corpus(corpus_path, fmt, progress, batch_size)
    if not ids:
        raise CorpusError(f"{corpus_path}: the corpus has no documents")
    if len(set(ids)) != len(ids):
        logger.warning("%s: document ids are not unique; ties between equal ids follow corpus order", corpus_path)
    num_docs, num_terms = len(ids), len(vocab)
    doc_count = int(np.count_nonzero(lengths))  # Lucene's docCount: documents with >= 1 token
    sum_ttf = int(lengths.sum())
    if doc_count == 0:
        raise CorpusError(f"{corpus_path}: no document has any indexable term")
    indptr, docs, tf, term = _postings(tokens, lengths, num_terms)

    extra: dict[str, np.ndarray] = {}
    if lucene_exact:
        norms = lx.int_to_byte4(lengths)
        avgdl = lx.avg_field_length(sum_ttf, doc_count)
        idf = lx.idf(np.diff(indptr), doc_count)
        cache = lx.norm_inverse_cache(k1, b, avgdl)
        data = lx.term_score(idf[term], tf, cache[norms[docs]])  # boost 1: weight == idf
        model = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numpy")
        model.scores = {"data": data, "indices": docs, "indptr": indptr, "num_docs": num_docs}
        model.vocab_dict = vocab
        model.nonoccurrence_array = None
        tf_dtype = np.uint16 if tf.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
        extra = {_TF: tf.astype(tf_dtype), _NORMS: norms, _IDF: idf}
    else:
        model = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numpy")
        per_doc = [t.tolist() for t in np.split(tokens, np.cumsum(lengths)[:-1])]
        model.index((per_doc, vocab), create_empty_token=False, show_progress=progress)
        del per_doc
    del tokens, term

    with index_dir_swap(index_dir) as tmp:
        model.save(tmp, show_progress=False)
        (tmp / _DOC_IDS).write_text(json.dumps(ids), encoding="utf-8")  # ASCII escapes: lone surrogates survive
        np.save(tmp / _DOC_RANK, _doc_rank(ids))
        for name, values in extra.items():
            np.save(tmp / name, values)
        meta = {
            "format": INDEX_FORMAT,
            "format_version": FORMAT_VERSION,
            "backend": "bm25s",
            "bm25s_version": bm25s.__version__,
            "k1": float(k1),
            "b": float(b),
            "lucene_exact": bool(lucene_exact),
            "analyzer": ANALYZER_NAME,
            "corpus_path": str(corpus_path.resolve()),
            "corpus_format": {"id_field": fmt.id_field, "text_fields": list(fmt.text_fields)},
            "num_docs": num_docs,
            "doc_count": doc_count,
            "sum_total_term_freq": sum_ttf,
            "num_terms": num_terms,
            "num_postings": int(len(docs)),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    logger.info("bm25s index of %d docs (%d terms, lucene_exact=%s) built in %.1fs at %s",
                num_docs, num_terms, lucene_exact, time.perf_counter() - started, index_dir)
    return index_dir


def read_index_metadata(index_dir: str | Path) -> dict[str, Any]:
    """The ``verl_rec_index.json`` of an index, with a clear error when it is missing or foreign."""
    path = Path(index_dir) / METADATA_FILE
    if not Path(index_dir).is_dir():
        raise Bm25sIndexError(f"bm25s index directory {index_dir} does not exist; build it with build_bm25s_index()")
    if not path.is_file():
        raise Bm25sIndexError(f"{index_dir} has no {METADATA_FILE}: not a (complete) verl_rec bm25s index; "
                              "build it with build_bm25s_index()")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise Bm25sIndexError(f"{path} is unreadable ({exc}); rebuild the index") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT or meta.get("backend") != "bm25s":
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise IndexMetadataError(f"{path} does not describe a verl_rec bm25s index (format {found!r})")
    return meta


def check_index_metadata(meta: dict[str, Any], index_dir: Path, **expected: Any) -> None:
    """Refuse an index built by other code or with other settings than ``expected`` (None = any)."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise IndexMetadataError(f"bm25s index {index_dir} has format version {meta.get('format_version')}, this code "
                                 f"reads version {FORMAT_VERSION}; rebuild it with build_bm25s_index()")
    if meta.get("analyzer") != ANALYZER_NAME:
        raise IndexMetadataError(f"bm25s index {index_dir} was built with analyzer {meta.get('analyzer')!r} but this code "
                                 f"analyzes queries with {ANALYZER_NAME!r}; rebuild it with build_bm25s_index()")
    for key, want in expected.items():
        if want is None:
            continue
        have = meta.get(key)
        same = (str(Path(have).resolve()) == str(Path(want).resolve())) if key == "corpus_path" and have else have == want
        if isinstance(want, float) and isinstance(have, (int, float)):
            same = np.float32(have) == np.float32(want)
        if not same:
            raise IndexMetadataError(f"bm25s index {index_dir} was built with {key}={have!r}, but {key}={want!r} was "
                                     f"asked for; rebuild it with build_bm25s_index(..., {key}={want!r}) or point to "
                                     "another index")


# ----------------------------------------------------------------------------------------------
# Search kernels: score docs containing a query term, keep the top k by (score desc, id asc)
# ----------------------------------------------------------------------------------------------


def _plan_arrays(plans: list[tuple[np.ndarray, np.ndarray]], lucene_exact: bool):
    """Flatten per-query (term ids, counts) into CSR arrays for the kernels."""
    ptr = np.zeros(len(plans) + 1, dtype=np.int64)
    np.cumsum([len(t) for t, _ in plans], out=ptr[1:])
    terms = np.concatenate([t for t, _ in plans]) if plans else np.zeros(0, np.int64)
    counts = np.concatenate([c for _, c in plans]) if plans else np.zeros(0, np.int64)
    # counts that are powers of two scale the stored boost-1 score exactly; others need Lucene's formula
    recompute = lucene_exact & ((counts & (counts - 1)) != 0)
    return ptr, terms.astype(np.int64), counts.astype(np.float32), recompute.astype(np.uint8)


def _contributions_numpy(t, boost, recompute, indptr, indices, data, tf, norms, cache, idf):
    start, end = int(indptr[t]), int(indptr[t + 1])
    docs = np.asarray(indices[start:end])
    if recompute:
        weight = np.float32(boost) * idf[t]
        values = lx.term_score(weight, np.asarray(tf[start:end]), cache[norms[docs]])
    else:
        values = np.float32(boost) * np.asarray(data[start:end])
    return docs, values


def _search_numpy(q_ptr, q_terms, q_boost, q_recompute, indptr, indices, data, tf, norms, cache, idf, doc_rank, k):
    """Reference kernel: same arithmetic and order as the numba one, one query at a time."""
    n_queries = len(q_ptr) - 1
    out_docs = np.zeros((n_queries, k), dtype=np.int32)
    out_scores = np.zeros((n_queries, k), dtype=np.float32)
    out_n = np.zeros(n_queries, dtype=np.int64)
    for q in range(n_queries):
        parts = [_contributions_numpy(int(q_terms[i]), q_boost[i], q_recompute[i], indptr, indices, data, tf, norms,
                                      cache, idf) for i in range(q_ptr[q], q_ptr[q + 1])]
        if not parts:
            continue
        docs = np.concatenate([p[0] for p in parts])
        values = np.concatenate([p[1] for p in parts]).astype(np.float64)
        uniq, inverse = np.unique(docs, return_inverse=True)
        scores = np.bincount(inverse, weights=values, minlength=len(uniq)).astype(np.float32)
        keep = scores > 0
        uniq, scores = uniq[keep], scores[keep]
        if len(scores) > k:
            threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= threshold
            uniq, scores = uniq[keep], scores[keep]
        order = np.lexsort((doc_rank[uniq], -scores))[:k]
        out_n[q] = len(order)
        out_docs[q, : len(order)] = uniq[order]
        out_scores[q, : len(order)] = scores[order]
    return out_docs, out_scores, out_n


try:  # numba is optional: without it the numpy kernel serves
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None
    prange = range

    def njit(*args: Any, **kwargs: Any):
        return (lambda f: f) if not args or not callable(args[0]) else args[0]


# The top-k heap holds one uint64 key per document: float32 score bits (positive floats order
# like their bits) above the inverted id rank, so "better" is one integer comparison:
# higher score first, then smaller document id string (Anserini's Sort(score, id)).
_LOW = 0xFFFFFFFF


@njit(cache=True, inline="always")
def _sift_down(heap, i, size):
    while True:
        child = 2 * i + 1
        if child >= size:
            return
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= heap[i]:
            return
        heap[i], heap[child] = heap[child], heap[i]
        i = child


@njit(cache=True, inline="always")
def _sift_up(heap, i):
    while i > 0:
        parent = (i - 1) // 2
        if heap[parent] <= heap[i]:
            return
        heap[i], heap[parent] = heap[parent], heap[i]
        i = parent


@njit(cache=True, inline="always")
def _offer(heap, size, k, bits, rank):
    """Offer (score bits, id rank) to the min-heap of the best k; return the new size."""
    key = (np.uint64(bits) << np.uint64(32)) | (np.uint64(_LOW) - np.uint64(rank))
    if size < k:
        heap[size] = key
        _sift_up(heap, size)
        return size + 1
    if key > heap[0]:
        heap[0] = key
        _sift_down(heap, 0, size)
    return size


@njit(parallel=True, cache=True, nogil=True)  # nogil: the service answers requests while it runs
def _search_numba(q_ptr, q_terms, q_boost, q_recompute, indptr, indices, data, tf, norms, cache, idf, doc_rank,
                  doc_of_rank, k, n_docs, acc_rows, touched_rows, out_docs, out_scores, out_n):
    """Parallel over queries, handed out one at a time to whichever thread is free.

    Each thread scores into its own row of ``acc_rows`` (a dense accumulator, all zeros between
    queries: every query clears what it touched) and ``touched_rows``; the caller keeps them
    across calls, so no call pays for allocating and faulting in ``2 x n_docs`` buffers.
    Dynamic hand-out (the caller sets numba's parallel chunk size to 1; the default is a static
    split) means a thread that the OS preempts (reward workers share these cores) no longer
    holds back its half of the batch. The outputs come from the caller too: the only parallel
    loop here is the one over queries.

    Term scores are added in double and the sum is cast to float32, as Lucene does. A query
    whose postings are few relative to the corpus tracks the documents it touches; others
    scan the whole accumulator (cheaper than a branch per posting).
    """
    n_queries = len(q_ptr) - 1
    one = np.float32(1.0)
    shift = np.uint64(32)
    for q in prange(n_queries):
        row = numba.get_thread_id()  # 0 <= row < get_num_threads() == len(acc_rows) (see _run)
        acc = acc_rows[row]
        touched = touched_rows[row]
        heap = np.empty(k, dtype=np.uint64)
        fbuf = np.empty(1, dtype=np.float32)
        ubuf = fbuf.view(np.uint32)
        n_postings = 0
        for i in range(q_ptr[q], q_ptr[q + 1]):
            n_postings += indptr[q_terms[i] + 1] - indptr[q_terms[i]]
        sparse = n_postings * 8 < n_docs
        n_touched = 0
        for i in range(q_ptr[q], q_ptr[q + 1]):
            t = q_terms[i]
            boost = q_boost[i]
            start, end = indptr[t], indptr[t + 1]
            if q_recompute[i] != 0:  # Lucene's doScore with this boost, from tf and the norm byte
                weight = boost * idf[t]
                for j in range(start, end):
                    d = indices[j]
                    value = weight - weight / (one + np.float32(tf[j]) * cache[norms[d]])
                    if sparse and acc[d] == 0.0 and value > 0:
                        touched[n_touched] = d
                        n_touched += 1
                    acc[d] += np.float64(value)
            elif sparse:
                for j in range(start, end):
                    d = indices[j]
                    value = boost * data[j]
                    if acc[d] == 0.0 and value > 0:
                        touched[n_touched] = d
                        n_touched += 1
                    acc[d] += np.float64(value)
            elif boost == one:
                for j in range(start, end):
                    acc[indices[j]] += np.float64(data[j])
            else:
                for j in range(start, end):
                    acc[indices[j]] += np.float64(boost * data[j])
        size = 0
        root = np.uint32(0)  # score bits of the worst kept hit once the heap is full
        for m in range(n_touched if sparse else n_docs):
            d = touched[m] if sparse else m
            fbuf[0] = np.float32(acc[d])
            acc[d] = 0.0
            bits = ubuf[0]
            if size == k:
                if bits < root:  # the common case: not good enough, decided without the id rank
                    continue
            elif not fbuf[0] > 0:
                continue
            size = _offer(heap, size, k, bits, doc_rank[d])
            if size == k:
                root = np.uint32(heap[0] >> shift)
        for end in range(size - 1, 0, -1):  # heap sort: the worst goes to the back
            heap[0], heap[end] = heap[end], heap[0]
            _sift_down(heap, 0, end)
        out_n[q] = size
        for m in range(size):
            ubuf[0] = np.uint32(heap[m] >> shift)
            out_scores[q, m] = fbuf[0]
            out_docs[q, m] = doc_of_rank[np.int64(np.uint64(_LOW) - (heap[m] & np.uint64(_LOW)))]
    return out_n


def numba_available() -> bool:
    return numba is not None


# ----------------------------------------------------------------------------------------------
# Retriever
# ----------------------------------------------------------------------------------------------


class Bm25sRetriever(Retriever):
    """BM25 top-k from a :func:`build_bm25s_index` index, in this process.

    ``backend``: ``"numba"`` (parallel over queries with ``threads`` threads), ``"numpy"``
    (slow reference), or ``"auto"`` (numba when importable). ``k1``/``b``/``lucene_exact``/
    ``corpus_path``, when given, must match how the index was built (else
    :class:`IndexMetadataError`): a reward must not silently run on another engine setting.
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
        if backend == "numba" and not numba_available():
            raise ImportError("backend='numba' needs the numba package (pip install numba), or use backend='auto'")
        self.index_dir = Path(index_dir)
        self.meta = read_index_metadata(self.index_dir)
        check_index_metadata(self.meta, self.index_dir, k1=k1, b=b, lucene_exact=lucene_exact,
                             corpus_path=str(corpus_path) if corpus_path is not None else None)
        self.backend = "numba" if backend == "numba" or (backend == "auto" and numba_available()) else "numpy"
        self.threads = max(1, int(threads if threads is not None else (os.cpu_count() or 1)))
        self.lucene_exact = bool(self.meta["lucene_exact"])
        self.k1, self.b = float(self.meta["k1"]), float(self.meta["b"])

        try:
            model = bm25s.BM25.load(self.index_dir, mmap=mmap, backend="numpy", show_progress=False)
            self._ids = np.array(json.loads((self.index_dir / _DOC_IDS).read_text(encoding="utf-8")), dtype=object)
            mode = "r" if mmap else None
            self._doc_rank = np.load(self.index_dir / _DOC_RANK, mmap_mode=mode)
            if self.lucene_exact:
                self._tf = np.load(self.index_dir / _TF, mmap_mode=mode)
                self._norms = np.load(self.index_dir / _NORMS)
                self._idf = np.load(self.index_dir / _IDF)
        except (OSError, ValueError) as exc:
            raise Bm25sIndexError(f"bm25s index {self.index_dir} is incomplete or corrupt ({exc}); rebuild it") from exc
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
            raise Bm25sIndexError(f"bm25s index {self.index_dir} is inconsistent: {'; '.join(problems)}; rebuild it")

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
        q_ptr, q_terms, q_boost, q_recompute = _plan_arrays(plans, self.lucene_exact)
        arrays = (self._indptr, self._indices, self._data, self._tf, self._norms, self._cache, self._idf,
                  self._doc_rank)
        if self.backend == "numpy":
            return _search_numpy(q_ptr, q_terms, q_boost, q_recompute, *arrays, k)
        arrays += (self._doc_of_rank,)
        with self._lock:
            threads = min(self.threads, numba.config.NUMBA_NUM_THREADS)
            numba.set_num_threads(threads)
            if len(self._acc_rows) != threads:  # the kernel indexes these by numba.get_thread_id()
                self._acc_rows = np.zeros((threads, self.num_docs), dtype=np.float64)
                self._touched_rows = np.empty((threads, self.num_docs), dtype=np.int32)
            n_queries = len(plans)
            out_docs = np.zeros((n_queries, k), dtype=np.int32)
            out_scores = np.zeros((n_queries, k), dtype=np.float32)
            out_n = np.zeros(n_queries, dtype=np.int64)
            chunksize = numba.set_parallel_chunksize(1)
            try:
                _search_numba(q_ptr, q_terms, q_boost, q_recompute, *arrays, k, self.num_docs,
                              self._acc_rows, self._touched_rows, out_docs, out_scores, out_n)
            finally:
                numba.set_parallel_chunksize(chunksize)
            return out_docs, out_scores, out_n


def _as_text(query: Any) -> str:
    if query is None:
        return ""
    return query if isinstance(query, str) else str(query)


__all__ = [
    "Bm25sIndexError",
    "Bm25sRetriever",
    "IndexMetadataError",
    "build_bm25s_index",
    "check_index_metadata",
    "read_index_metadata",
]
