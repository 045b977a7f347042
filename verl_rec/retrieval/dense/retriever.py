"""Dense retrieval: top-k documents by inner product between the encoded query and the corpus
vectors of a :func:`~verl_rec.retrieval.dense.build.build_dense_index` index.

Speed: faiss computes flat inner products with BLAS only for large query batches (faiss
1.15 compares queries x dims with ``faiss.cvar.distance_compute_blas_threshold`` = 128,000,
i.e. ~334 queries of 384 dims) and with a much slower per-query loop below; the service sends
batches of tens of queries, so the retriever lowers it (``blas_threshold``, process-wide).
faiss' OpenMP thread count is per calling thread, so it is set in every ``search`` call (the
service searches from its own engine thread). On CPU the query encoder, not faiss, is the
cost: MiniLM-L6 encoded ~125-165 short queries/s on 2 busy cores, the Vaswani flat search
took milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.retrieval.dense.build import FORMAT_VERSION, IDS_FILE, INDEX_FILE
from verl_rec.retrieval.dense.encoders import Encoder, EncoderConfig
from verl_rec.retrieval.dense.faiss_gpu import require_faiss, to_gpu, want_gpu
from verl_rec.retrieval.index_metadata import IndexCorruptError, IndexMismatchError, load_index_metadata

logger = logging.getLogger(__name__)

_EMPTY = SearchHits(ids=[], scores=np.zeros(0, dtype=np.float32))


class DenseRetriever(Retriever):
    """Top-k documents by inner product between the encoded query and the corpus vectors.

    The encoder comes from the index metadata (so queries are encoded as the documents
    were); ``encoder`` overrides fields of it, e.g. ``{"model": "/where/it/lives/now"}``.
    ``device`` (default ``"cpu"``: no GPU memory taken from the rollout engine) and
    ``batch_size`` set where and how queries are encoded. ``threads`` sets faiss' (and, when
    given, torch's) thread count. ``ef_search`` (HNSW) defaults to the value stored at build
    time and is raised to ``k`` when smaller. Scores are float32 inner products.
    """

    name = "dense"

    def __init__(self, index_path: str | Path, threads: int | None = None, ef_search: int | None = None,
                 device: str = "cpu", batch_size: int = 64, encoder: Mapping[str, Any] | None = None,
                 use_gpu: bool | str = False, mmap: bool = False, blas_threshold: int = 1) -> None:
        faiss = require_faiss()  # names the build to install when missing

        self.index_dir = Path(index_path)
        self.meta = load_index_metadata(self.index_dir, "dense", FORMAT_VERSION, "build_dense_index()")
        self.kind = self.meta["kind"]
        self.threads = max(1, int(threads if threads is not None else (os.cpu_count() or 1)))
        if threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index(str(self.index_dir / INDEX_FILE), flags)
            self._ids = np.asarray(json.loads((self.index_dir / IDS_FILE).read_text(encoding="utf-8")), dtype=object)
        except (OSError, RuntimeError, ValueError) as exc:
            raise IndexCorruptError(f"dense index {self.index_dir} is incomplete or corrupt ({exc}); rebuild it") from exc
        if index.ntotal != len(self._ids) or index.ntotal != self.meta["num_docs"] or index.d != self.meta["dims"]:
            raise IndexCorruptError(f"dense index {self.index_dir} is inconsistent: {index.ntotal} vectors of {index.d} "
                                  f"dims, {len(self._ids)} ids, metadata says {self.meta['num_docs']} x "
                                  f"{self.meta['dims']}; rebuild it")
        self.ef_search = int(ef_search if ef_search is not None else self.meta.get("params", {}).get("ef_search", 128))
        self._gpu_resources = None
        if want_gpu(use_gpu, self.kind):
            index, self._gpu_resources = to_gpu(index)
        self._index = index
        self.num_docs = int(index.ntotal)
        faiss.cvar.distance_compute_blas_threshold = int(blas_threshold)  # process-wide; see module doc

        stored = EncoderConfig.of(self.meta["encoder"])
        config = stored.with_overrides({"device": device, "batch_size": int(batch_size), **dict(encoder or {})})
        self.encoder = Encoder(config)
        if self.encoder.dims != index.d:
            raise IndexMismatchError(f"encoder {config.model} gives {self.encoder.dims}-dim vectors but index "
                                  f"{self.index_dir} holds {index.d}-dim ones; use the encoder it was built with")
        changed = {k: v for k, v in self.encoder.config.vector_settings().items() if stored.vector_settings()[k] != v}
        if changed:
            logger.warning("dense index %s: queries are encoded with %s, unlike the documents (%s)", self.index_dir,
                           changed, stored.vector_settings())
        self._lock = threading.Lock()

    def _search_params(self, k: int):
        import faiss

        if self.kind != "hnsw":
            return None
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, k)
        return params

    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """Encode the batch, search it in one faiss call, map rows back to document ids."""
        import faiss

        if self._index is None:
            raise RuntimeError(f"dense retriever over {self.index_dir} is closed")
        queries = list(queries)
        depth = min(int(k), self.num_docs)
        if not queries or depth <= 0:
            return [_EMPTY for _ in queries]
        vectors = np.ascontiguousarray(self.encoder.encode_queries(queries), dtype=np.float32)
        with self._lock:
            faiss.omp_set_num_threads(self.threads)
            scores, rows = self._index.search(vectors, depth, params=self._search_params(depth))
        hits = []
        for row_scores, row_ids in zip(scores, rows):
            keep = row_ids >= 0  # faiss pads with -1 when it finds fewer than k
            hits.append(SearchHits(ids=self._ids[row_ids[keep]].tolist(),
                                   scores=np.ascontiguousarray(row_scores[keep], dtype=np.float32)))
        return hits

    def close(self) -> None:
        """Drop the index and the encoder model (and their GPU memory). Safe to call twice."""
        self._index = None
        self._gpu_resources = None
        if getattr(self, "encoder", None) is not None:
            self.encoder.close()
