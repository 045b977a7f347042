"""Corpus embeddings -> faiss inner-product index (and corpus JSONL -> both, in two steps).

``build_dense_index`` turns a complete :func:`~verl_rec.retrieval.dense.embeddings.build_embeddings`
directory into an index directory:

* ``index.faiss``: ``IndexFlatIP`` (``kind="flat"``, exact) or ``IndexHNSWFlat`` with
  ``METRIC_INNER_PRODUCT`` (``kind="hnsw"``; the paper used M=32, efConstruction=200);
* ``ids.json``: document ids in faiss row order;
* ``verl_rec_index.json``: backend ``"dense"``, kind, parameters, the resolved encoder config
  (the retriever must encode queries exactly like the documents were), dims, doc count.
  Written last, so a crashed build never loads.

Inner product equals cosine similarity when the encoder L2-normalises (its default).
GPU: see :mod:`~verl_rec.retrieval.dense.faiss_gpu`.

Memory: a flat index holds ``count x dims x 4`` bytes (1.2M x 768 dims: 3.7 GB); HNSW adds
about ``2 x M x 4`` bytes of graph links per vector (M=32: ~260 B).
"""

from __future__ import annotations

import inspect
import logging
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from verl_rec.retrieval.corpus import CorpusFormat
from verl_rec.retrieval.dense.embeddings import build_embeddings, load_embeddings
from verl_rec.retrieval.dense.faiss_gpu import require_faiss, to_gpu, want_gpu
from verl_rec.retrieval.index_metadata import index_dir_swap, refuse_foreign_folder, write_index_metadata

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
FORMAT_VERSION = 1
KINDS = ("flat", "hnsw")
_ADD_BATCH = 65_536


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
    faiss = require_faiss()  # names the build to install when missing

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    index_dir = Path(index_dir)
    refuse_foreign_folder(index_dir, "dense")
    embeddings = load_embeddings(embeddings_dir)
    count, dims = embeddings.vectors.shape
    started = time.perf_counter()
    if threads:
        faiss.omp_set_num_threads(int(threads))
    index = _new_index(kind, dims, M, ef_construction, ef_search)
    gpu = want_gpu(use_gpu, kind)
    target, resources = to_gpu(index) if gpu else (index, None)
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
        write_index_metadata(tmp, "dense", FORMAT_VERSION, {
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
        })
    logger.info("dense %s index of %d x %d built in %.1fs at %s", kind, count, dims, seconds, index_dir)
    return index_dir


def build_dense_index_from_corpus(
    corpus_path: str | Path,
    index_dir: str | Path,
    fmt: CorpusFormat = CorpusFormat(),
    encoder: Mapping[str, Any] | None = None,
    embeddings: str | Path | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    index: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Embed a corpus (or reuse its complete embeddings), then index them with faiss; return the index dir.

    ``encoder``: :class:`~verl_rec.retrieval.dense.encoders.EncoderConfig` fields (``model`` is
    required). ``embeddings``: where the embeddings live (default ``<index_dir>_embeddings``;
    hours on CPU for a real catalogue, so they are kept and reused). ``batch_size`` and
    ``threads`` go to the embedding step, ``index`` to :func:`build_dense_index`.
    """
    encoder = dict(encoder or {})
    if not encoder.get("model"):
        raise ValueError("a dense index needs an encoder model: encoder={'model': <local folder or hub name>}")
    index_options = dict(index or {})
    accepted = list(inspect.signature(build_dense_index).parameters)[2:]
    unknown = sorted(set(index_options) - set(accepted))
    if unknown:
        raise ValueError(f"build_dense_index has no option(s) {unknown}; it accepts {accepted}")
    embeddings_dir = Path(embeddings or f"{index_dir}_embeddings")
    if progress:
        print(f"embedding {corpus_path} into {embeddings_dir} with {encoder}", file=sys.stderr, flush=True)
    embed = {k: v for k, v in (("batch_size", batch_size), ("threads", threads)) if v is not None}
    build_embeddings(corpus_path, embeddings_dir, encoder, fmt=fmt, progress=progress, **embed)
    return build_dense_index(embeddings_dir, index_dir, **index_options)


__all__ = ["FORMAT_VERSION", "IDS_FILE", "INDEX_FILE", "KINDS", "build_dense_index", "build_dense_index_from_corpus"]
