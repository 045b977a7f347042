"""``backend: http``: any search endpoint that takes a query and returns ranked ids.

The recipe's ``index_path`` is the engine's base URL (``{base}`` in the templates); the
``backend_options`` say how to ask (``url``, ``method``, ``body``, ``params``, ``headers``) and
where the answer keeps its ids (``ids_path``) and scores (``scores_path``). The node's retrieval
service batches, de-duplicates and caches as for every engine; this class sends each distinct
query of a batch as one request, at most ``max_concurrency`` at a time (the service is the one
process per node that talks to the engine, so that is the per-node limit).

A query the engine does not answer (after the retries) comes back as ``SearchHits.error``: the
reward scores it as a retrieval error and counts it, the trainer goes on. At start the engine is
probed once: an unreachable URL or an answer without the ids path fails then, with the URL,
the path and what to do, instead of as a run of retrieval errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from verl_rec.retrieval.base import Retriever, SearchHits, is_engine_uri
from verl_rec.retrieval.http.client import HttpEngine, HttpEngineError, RetryPolicy, auth_headers
from verl_rec.retrieval.http.response_path import ResponsePath, ResponseShapeError
from verl_rec.retrieval.http.template import RequestTemplate, clean_text

logger = logging.getLogger(__name__)
METHODS = ("GET", "POST")
_LOG_EVERY_S = 10.0  # one warning per this many seconds while queries keep failing


class HttpEngineUnreachableError(ConnectionError):
    """The engine did not answer the start-up probe: names the URL and what to do."""


class HttpRetriever(Retriever):
    """Ranked ids from an HTTP search endpoint (see the module docstring for the options)."""

    name = "http"

    def __init__(self, index_path: str, url: str = "{base}", ids_path: str = "", scores_path: str | None = None,
                 method: str = "GET", body: Any = None, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None, timeout_s: float = 10.0, retries: int = 2,
                 backoff_s: float = 0.2, max_concurrency: int = 8, auth_env: str | None = None,
                 auth_header: str = "Authorization", auth_prefix: str = "", probe_query: str = "test",
                 probe: bool = True) -> None:
        base = str(index_path)
        if not is_engine_uri(base):
            raise ValueError(f"backend http: retrieval.index_path must be the engine's base URL (e.g. "
                             f"http://127.0.0.1:8081), got {base!r}")
        self.method = str(method).upper()
        if self.method not in METHODS:
            raise ValueError(f"backend_options.method must be one of {METHODS}, got {method!r}")
        if self.method == "GET" and body is not None:
            raise ValueError("backend_options.body is set but method is GET; use method: POST to send a body")
        self.template = RequestTemplate(str(url), base, body, dict(params or {}))
        self.ids_path = ResponsePath.parse(ids_path, "backend_options.ids_path")
        self.scores_path = None if scores_path is None else ResponsePath.parse(scores_path, "backend_options.scores_path")
        if int(max_concurrency) < 1:
            raise ValueError(f"backend_options.max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = int(max_concurrency)
        engine_headers = {**{str(k): str(v) for k, v in (headers or {}).items()},
                          **auth_headers(auth_env, auth_header, auth_prefix)}
        self.engine = HttpEngine(float(timeout_s), RetryPolicy(int(retries), float(backoff_s)), engine_headers)
        self._pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="verl-rec-http")
        self._last_warning = 0.0
        self._failures_since_warning = 0
        if probe:
            self.probe(probe_query)

    # -- Retriever API -----------------------------------------------------------------------

    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        """Top-``k`` hits of every query, one request per distinct non-blank query, in parallel."""
        texts = [clean_text(q) for q in queries]
        if k <= 0:
            return [SearchHits(ids=[]) for _ in texts]
        unique = [t for t in dict.fromkeys(texts) if t.strip()]
        answers = dict(zip(unique, self._pool.map(lambda text: self._search_one(text, int(k)), unique)))
        empty = SearchHits(ids=[])
        return [answers.get(t, empty) for t in texts]

    def warmup(self) -> None:
        """Nothing to warm: the engine was probed when this retriever opened."""

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.close()

    # -- one query -----------------------------------------------------------------------------

    def probe(self, query: str = "test") -> SearchHits:
        """Ask the engine one query now; fail with what to do if it is unreachable or its answer
        does not hold the ids path."""
        url = self.template.url(query, 1)
        try:
            payload = self.engine.request_json(self.method, url, self.template.body(query, 1))
        except HttpEngineError as exc:
            if exc.status is None:
                raise HttpEngineUnreachableError(
                    f"the HTTP retrieval engine did not answer at start: {exc}. Start the engine, or point "
                    f"retrieval.index_path (the base URL) / backend_options.url at it") from None
            raise HttpEngineUnreachableError(
                f"the HTTP retrieval engine refused the start-up probe: {exc}. Check that the engine is healthy and "
                "that backend_options.url, method, body and headers fit its API") from None
        return self._hits(payload, 1)  # raises ResponseShapeError naming the path

    def _search_one(self, text: str, k: int) -> SearchHits:
        try:
            payload = self.engine.request_json(self.method, self.template.url(text, k), self.template.body(text, k))
            return self._hits(payload, k)
        except (HttpEngineError, ResponseShapeError) as exc:
            self._warn(text, exc)
            return SearchHits(ids=[], error=str(exc))
        except Exception as exc:  # never raise into the trainer for one query: an error, counted
            self._warn(text, exc)
            return SearchHits(ids=[], error=f"{type(exc).__name__}: {exc}")

    def _hits(self, payload: Any, k: int) -> SearchHits:
        ids = [str(i) for i in self.ids_path.extract(payload)][:k]
        if self.scores_path is not None:
            scores = np.asarray([float(s) for s in self.scores_path.extract(payload)][:len(ids)], dtype=np.float32)
            if len(scores) != len(ids):
                raise ResponseShapeError(f"{self.scores_path.text!r} gave {len(scores)} scores for {len(ids)} ids "
                                         f"({self.ids_path.text!r}); the two paths must name the same hits")
        else:  # no scores in the answer: its order is the ranking
            scores = np.arange(len(ids), 0, -1, dtype=np.float32)
        return SearchHits(ids=ids, scores=scores)

    def _warn(self, text: str, exc: Exception) -> None:
        self._failures_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= _LOG_EVERY_S:
            logger.warning("verl-rec http engine: %d query(ies) failed since the last warning; e.g. %.80r: %s",
                           self._failures_since_warning, text, exc)
            self._last_warning, self._failures_since_warning = now, 0


__all__ = ["HttpEngineUnreachableError", "HttpRetriever", "METHODS"]
