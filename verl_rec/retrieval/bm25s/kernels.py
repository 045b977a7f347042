"""Top-k BM25 kernels over a bm25s index: score the documents that contain a query term,
keep the best ``k`` by (score desc, document id string asc): Anserini's ``Sort(score, id)``.

Why not ``bm25s.BM25.retrieve``: it sums in float32 (Lucene sums in double, then casts),
breaks ties arbitrarily and returns zero-score documents when fewer than ``k`` match. Two
kernels with the same arithmetic and order: :func:`search_numba` (parallel over queries,
optional) and :func:`search_numpy` (the slow reference).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verl_rec.retrieval.bm25s import lucene_scoring as lx


def plan_arrays(plans: list[tuple[np.ndarray, np.ndarray]], lucene_exact: bool):
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


def search_numpy(q_ptr, q_terms, q_boost, q_recompute, indptr, indices, data, tf, norms, cache, idf, doc_rank, k):
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
def search_numba(q_ptr, q_terms, q_boost, q_recompute, indptr, indices, data, tf, norms, cache, idf, doc_rank,
                  doc_of_rank, k, n_docs, acc_rows, touched_rows, out_docs, out_scores, out_n):
    """Parallel over queries, handed out one at a time to whichever thread is free
    (call it through :func:`run_numba`).

    Each thread scores into its own row of ``acc_rows`` (a dense accumulator, all zeros between
    queries: every query clears what it touched) and ``touched_rows``; the caller keeps them
    across calls, so no call pays for allocating and faulting in ``2 x n_docs`` buffers.
    Dynamic hand-out (:func:`run_numba` sets numba's parallel chunk size to 1; the default is a static
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
        row = numba.get_thread_id()  # 0 <= row < get_num_threads() == len(acc_rows) (see run_numba)
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


def max_numba_threads() -> int:
    """The most threads a numba kernel may run on in this process (``NUMBA_NUM_THREADS``)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def run_numba(threads: int, *args: Any) -> None:
    """:func:`search_numba` on ``threads`` threads, queries handed out one at a time.

    Callers serialise these calls: numba's default threading layer aborts the process on
    concurrent parallel launches.
    """
    numba.set_num_threads(threads)
    chunksize = numba.set_parallel_chunksize(1)
    try:
        search_numba(*args)
    finally:
        numba.set_parallel_chunksize(chunksize)


__all__ = ["max_numba_threads", "numba_available", "plan_arrays", "run_numba", "search_numba", "search_numpy"]
