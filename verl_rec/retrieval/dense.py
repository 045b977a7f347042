"""Dense retrieval: a faiss inner-product index over corpus embeddings, and its Retriever.

``build_dense_index`` turns a complete :func:`~verl_rec.retrieval.embeddings.build_embeddings`
directory into an index directory:

* ``index.faiss``: ``IndexFlatIP`` (``kind="flat"``, exact) or ``IndexHNSWFlat`` with
  ``METRIC_INNER_PRODUCT`` (``kind="hnsw"``; the paper used M=32, efConstruction=200);
* ``ids.json``: document ids in faiss row order;
* ``verl_rec_index.json``: backend ``"dense"``, kind, parameters, the resolved encoder config
  (the retriever must encode queries exactly like the documents were), dims, doc count.
  Written last, so a crashed build never loads.

Inner product equals cosine similarity when the encoder L2-normalises (its default).

GPU: ``use_gpu=True`` uses faiss' GPU build when it is installed and sees a GPU, and falls
back to CPU with a warning otherwise; ``use_gpu="require"`` raises instead. Only the flat
index runs on GPU (faiss has no GPU HNSW); an HNSW index always searches on CPU.

Memory: a flat index holds ``count x dims x 4`` bytes (1.2M x 768 dims: 3.7 GB); HNSW adds
about ``2 x M x 4`` bytes of graph links per vector (M=32: ~260 B). ``use_gpu`` puts the flat
vectors in GPU memory, next to the rollout engine's: leave it off unless the GPU has room.

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
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from verl_rec.retrieval.index_meta import METADATA_FILE, index_dir_swap
from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.retrieval.embeddings import load_embeddings
from verl_rec.retrieval.encoders import Encoder, EncoderConfig

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
INDEX_FORMAT = "verl_rec.dense"
FORMAT_VERSION = 1
KINDS = ("flat", "hnsw")
_ADD_BATCH = 65_536
_EMPTY = SearchHits(ids=[], scores=np.zeros(0, dtype=np.float32))


class DenseIndexError(FileNotFoundError):
    """The dense index directory is missing, incomplete, or not a verl_rec dense index."""


# ----------------------------------------------------------------------------------------------
# GPU selection
# ----------------------------------------------------------------------------------------------


def faiss_gpu_available() -> bool:
    """True when this faiss build has GPU support and sees at least one GPU."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def _want_gpu(use_gpu: bool | str, kind: str) -> bool:
    """Resolve ``use_gpu`` (False / True / "require") against what faiss and the index allow."""
    if use_gpu not in (False, True, "require"):
        raise ValueError(f"use_gpu must be False, True or 'require', got {use_gpu!r}")
    if not use_gpu:
        return False
    problem = None
    if not faiss_gpu_available():
        problem = "this faiss has no GPU support or sees no GPU (pip install faiss-gpu-cu12 on a GPU machine)"
    elif kind != "flat":
        problem = f"faiss has no GPU {kind} index"
    if problem is None:
        return True
    if use_gpu == "require":
        raise RuntimeError(f"use_gpu='require' but {problem}")
    logger.warning("use_gpu=True but %s: using the CPU", problem)
    return False


def _to_gpu(index):
    import faiss

    resources = faiss.StandardGpuResources()
    gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
    return gpu_index, resources  # the resources must outlive the index


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------


def _new_index(kind: str, dims: int, M: int, ef_construction: int, ef_search: int):
    import faiss

    if kind == "flat":
        return faiss.IndexFlatIP(dims)
    index = faiss.IndexHNSWFlat(dims, int(M), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(ef_construction)
    index.hnsw.efSearch = int(ef_search)
    return index


def build_dense_index(
    embeddings_dir: str | Path,
    index_dir: str | Path,
    kind: str = "flat",
    M: int = 32,
    ef_construction: int = 200,
    ef_search: int = 128,
    use_gpu: bool | str = False,
    threads: int | None = None,
) -> Path:
    """Index complete embeddings with faiss (inner product) into ``index_dir``; return it.

    An existing verl_rec dense index at ``index_dir`` is replaced; any other non-empty
    directory is refused. ``ef_search`` is stored as the default the retriever searches with.
    """
    import faiss

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    index_dir = Path(index_dir)
    if index_dir.exists() and any(index_dir.iterdir()) and not (index_dir / METADATA_FILE).is_file():
        raise FileExistsError(f"{index_dir} exists and is not a verl_rec dense index; refusing to write into it")
    embeddings = load_embeddings(embeddings_dir)
    count, dims = embeddings.vectors.shape
    started = time.perf_counter()
    if threads:
        faiss.omp_set_num_threads(int(threads))
    index = _new_index(kind, dims, M, ef_construction, ef_search)
    gpu = _want_gpu(use_gpu, kind)
    target, resources = _to_gpu(index) if gpu else (index, None)
    for start in range(0, count, _ADD_BATCH):
        target.add(np.ascontiguousarray(embeddings.vectors[start:start + _ADD_BATCH], dtype=np.float32))
    if gpu:
        index = faiss.index_gpu_to_cpu(target)
    del resources
    seconds = time.perf_counter() - started

    with index_dir_swap(index_dir) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        shutil.copyfile(embeddings.path / "ids.json", tmp / IDS_FILE)
        params = {"M": int(M), "ef_construction": int(ef_construction), "ef_search": int(ef_search)} if kind == "hnsw" else {}
        meta = {
            "format": INDEX_FORMAT,
            "format_version": FORMAT_VERSION,
            "backend": "dense",
            "kind": kind,
            "metric": "inner_product",
            "params": params,
            "encoder": embeddings.meta["encoder"],
            "dims": int(dims),
            "num_docs": int(count),
            "embeddings_dir": str(embeddings.path.resolve()),
            "corpus_path": embeddings.meta.get("corpus_path"),
            "faiss_version": faiss.__version__,
            "built_on": "gpu" if gpu else "cpu",
            "build_seconds": round(seconds, 3),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    logger.info("dense %s index of %d x %d built in %.1fs at %s", kind, count, dims, seconds, index_dir)
    return index_dir


def read_dense_metadata(index_dir: str | Path) -> dict[str, Any]:
    """The ``verl_rec_index.json`` of a dense index, with a clear error naming the path."""
    index_dir = Path(index_dir)
    path = index_dir / METADATA_FILE
    if not index_dir.is_dir():
        raise DenseIndexError(f"dense index directory {index_dir} does not exist; build it with build_dense_index()")
    if not path.is_file():
        raise DenseIndexError(f"{index_dir} has no {METADATA_FILE}: not a (complete) verl_rec dense index; "
                              "build it with build_dense_index()")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DenseIndexError(f"{path} is unreadable ({exc}); rebuild the index") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT or meta.get("backend") != "dense":
        raise DenseIndexError(f"{path} does not describe a verl_rec dense index (backend {meta.get('backend')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DenseIndexError(f"dense index {index_dir} has format version {meta.get('format_version')}, this code "
                              f"reads version {FORMAT_VERSION}; rebuild it with build_dense_index()")
    return meta


# ----------------------------------------------------------------------------------------------
# Searching
# ----------------------------------------------------------------------------------------------


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
        import faiss

        self.index_dir = Path(index_path)
        self.meta = read_dense_metadata(self.index_dir)
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
            raise DenseIndexError(f"dense index {self.index_dir} is incomplete or corrupt ({exc}); rebuild it") from exc
        if index.ntotal != len(self._ids) or index.ntotal != self.meta["num_docs"] or index.d != self.meta["dims"]:
            raise DenseIndexError(f"dense index {self.index_dir} is inconsistent: {index.ntotal} vectors of {index.d} "
                                  f"dims, {len(self._ids)} ids, metadata says {self.meta['num_docs']} x "
                                  f"{self.meta['dims']}; rebuild it")
        self.ef_search = int(ef_search if ef_search is not None else self.meta.get("params", {}).get("ef_search", 128))
        self._gpu_resources = None
        if _want_gpu(use_gpu, self.kind):
            index, self._gpu_resources = _to_gpu(index)
        self._index = index
        self.num_docs = int(index.ntotal)
        faiss.cvar.distance_compute_blas_threshold = int(blas_threshold)  # process-wide; see module doc

        stored = EncoderConfig.of(self.meta["encoder"])
        config = stored.with_overrides({"device": device, "batch_size": int(batch_size), **dict(encoder or {})})
        self.encoder = Encoder(config)
        if self.encoder.dims != index.d:
            raise DenseIndexError(f"encoder {config.model} gives {self.encoder.dims}-dim vectors but index "
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
