"""Search a Milvus collection built by :mod:`~verl_rec.retrieval.milvus.build`: BM25 full-text
(Milvus analyses and scores the query text) or dense (our encoder embeds the query, Milvus finds
the nearest vectors).

The engine does the search; batching, de-duplication and caching stay in the retrieval service.
A query the engine refuses (text it cannot analyse, over a size limit) is marked with
``SearchHits.error`` after the batch is retried query by query; an engine that fails a query
known to be harmless (it is down, the collection was dropped) raises, so the reward counts a
retrieval error rather than a miss.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.retrieval.milvus.connection import Credentials, connect
from verl_rec.retrieval.milvus.reply import search_arrays
from verl_rec.retrieval.milvus.schema import CollectionLayout, check_layout, read_manifest

logger = logging.getLogger(__name__)

_EMPTY = SearchHits(ids=[], scores=np.zeros(0, dtype=np.float32))
_MAX_QUERY_CHARS = 8192  # longer text is cut before it reaches the engine (a query, not a document)
_PROBE = "information"  # a query every collection can answer: tells a refused query from a dead engine
_MAX_LIMIT = 16_384  # Milvus' topk limit


def _engine_unreachable(exc: Exception) -> bool:
    """A transport failure (engine down, deadline passed): no query is to blame, so no retry per query."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("unavailable", "deadline", "connect", "timeout", "rpcerror"))


class MilvusRetriever(Retriever):
    """Top-k documents of a Milvus collection, embedded (``index_path`` a local folder, the engine
    is started and owned here) or remote (``index_path`` a ``http://host:19530`` URI).

    ``collection``, ``mode`` (bm25 | dense), ``id_field`` / ``text_field`` / ``vector_field``
    must match the build (checked at start); ``analyzer``, when given, too. ``search_params``
    go to Milvus (dense HNSW: ``ef``, raised to ``k``; IVF: ``nprobe``; BM25:
    ``drop_ratio_search``). ``consistency_level``: Milvus' (default Bounded; the corpus does not
    change while training). Dense options as :class:`~verl_rec.retrieval.dense.retriever.DenseRetriever`:
    ``encoder`` overrides fields of the build's encoder, ``device``, ``batch_size``.
    Credentials: ``token_env`` or ``user_env`` + ``password_env`` name environment variables.
    """

    name = "milvus"

    def __init__(self, index_path: str | Path, collection: str = "corpus", mode: str = "bm25",
                 id_field: str = "id", text_field: str = "text", vector_field: str = "",
                 analyzer: Mapping[str, Any] | None = None, search_params: Mapping[str, Any] | None = None,
                 consistency_level: str = "Bounded", encoder: Mapping[str, Any] | None = None,
                 device: str = "cpu", batch_size: int = 64, token_env: str | None = None,
                 user_env: str | None = None, password_env: str | None = None, timeout: int = 30) -> None:
        self.index_path = str(index_path)
        asked = CollectionLayout(collection=collection, mode=mode, id_field=id_field, text_field=text_field,
                                 vector_field=vector_field)
        self._conn = connect(index_path, Credentials(token_env, user_env, password_env), timeout=timeout)
        try:
            self.meta = read_manifest(self._conn.client, collection) if self._conn.client.has_collection(collection) else None
            self.layout = check_layout(self._conn.client, self.index_path, asked, self.meta, analyzer)
            self._conn.client.load_collection(collection)
            self.encoder = self._open_encoder(encoder, device, batch_size) if mode == "dense" else None
        except BaseException:
            self._conn.close()
            raise
        self.num_docs = int(self.meta["num_docs"])
        self.search_params = dict(search_params or {})
        self.consistency_level = consistency_level
        self.timeout = max(1, math.ceil(timeout))  # pymilvus bounds its retries only by an int timeout
        self._lock = threading.Lock()

    def _open_encoder(self, overrides: Mapping[str, Any] | None, device: str, batch_size: int):
        from verl_rec.retrieval.dense.encoders import Encoder, EncoderConfig
        from verl_rec.retrieval.index_metadata import IndexMismatchError

        config = EncoderConfig.of(self.meta["encoder"]).with_overrides(
            {"device": device, "batch_size": int(batch_size), **dict(overrides or {})})
        encoder = Encoder(config)
        if encoder.dims != self.layout.dims:
            raise IndexMismatchError(f"encoder {config.model} gives {encoder.dims}-dim vectors but Milvus collection "
                                     f"{self.layout.collection!r} at {self.index_path} holds {self.layout.dims}-dim "
                                     "ones; use the encoder it was built with")
        return encoder

    def _params(self, k: int) -> dict[str, Any]:
        params = dict(self.search_params)
        if self.layout.mode == "dense" and self.layout.index_type == "HNSW":
            params["ef"] = max(int(params.get("ef", 128)), k)
        return {"metric_type": self.layout.metric, "params": params}

    def _query_data(self, queries: list[str]) -> list[Any]:
        texts = [q[:_MAX_QUERY_CHARS] for q in queries]
        if self.layout.mode == "bm25":
            return texts
        return list(np.asarray(self.encoder.encode_queries(texts), dtype=np.float32))

    def _engine_search(self, data: list[Any], k: int) -> list[tuple[list[str], np.ndarray]]:
        return search_arrays(self._conn.client, self.layout.collection, data, self.layout.vector_field,
                             self._params(k), k, self.consistency_level, self.timeout)

    @staticmethod
    def _hits(ranked: tuple[list[str], np.ndarray]) -> SearchHits:
        return SearchHits(ids=ranked[0], scores=ranked[1])

    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """One engine call for the batch; if the engine refuses it, one per query to find the culprit."""
        if self._conn is None or self._conn.client is None:
            raise RuntimeError(f"milvus retriever over {self.index_path} is closed")
        queries = [q if isinstance(q, str) else str(q) for q in queries]
        depth = min(int(k), self.num_docs, _MAX_LIMIT)
        if not queries or depth <= 0:
            return [_EMPTY for _ in queries]
        keep = [i for i, q in enumerate(queries) if q.strip()]  # nothing to analyse or embed: an empty ranking
        out: list[SearchHits] = [_EMPTY] * len(queries)
        if not keep:
            return out
        with self._lock:
            data = self._query_data([queries[i] for i in keep])
            try:
                results = self._engine_search(data, depth)
                for i, rows in zip(keep, results):
                    out[i] = self._hits(rows)
                return out
            except Exception as batch_error:  # noqa: BLE001  (pymilvus' and grpc's errors; sorted out below)
                if _engine_unreachable(batch_error):
                    raise RuntimeError(f"Milvus at {self.index_path} is unreachable: {batch_error}") from batch_error
                logger.debug("milvus batch search failed (%s); retrying query by query", batch_error)
            for i, item in zip(keep, data):
                try:
                    out[i] = self._hits(self._engine_search([item], depth)[0])
                except Exception as exc:  # noqa: BLE001
                    self._raise_if_engine_down(exc)
                    out[i] = SearchHits(ids=[], error=f"milvus refused the query: {type(exc).__name__}: {exc}"[:500])
        return out

    def _raise_if_engine_down(self, cause: Exception) -> None:
        """A harmless query failing too means the engine, not the query, is the problem: raise."""
        try:
            self._engine_search(self._query_data([_PROBE]), 1)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"Milvus at {self.index_path} (collection {self.layout.collection!r}) failed: {exc}") from cause

    def close(self) -> None:
        """Close the client, end an embedded engine, drop the encoder. Safe to call twice."""
        if getattr(self, "_conn", None) is not None:
            self._conn.close()
            self._conn = None
        if getattr(self, "encoder", None) is not None:
            self.encoder.close()
            self.encoder = None


__all__ = ["MilvusRetriever"]
