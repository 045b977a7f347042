"""The shared per-node retrieval service: one engine, many reward workers.

veRL 0.9 scores one sample per request from ``reward.num_workers`` Ray actors. Opening a JVM
or a million-document index in each of them would multiply memory and lose batching, so
every worker talks to ONE named Ray actor per node (``get_if_exists``) that:

* opens the engine in its own process (the JVM starts there, never before a fork) with
  warm-up at start, not on the first training step;
* collects concurrent requests for ``batch_window_ms`` or until ``max_batch_size``, then
  runs them as one engine batch (micro-batching);
* answers identical queries once per batch (a GRPO group often repeats a query) and keeps a
  bounded LRU cache of rankings across batches;
* returns, when the caller passes its targets, only the positions of those targets: the
  metric needs nothing else, and 1000 ids per call would cost more than the search.

Scaling: the service is named per node (``<name>@<node_id>``) and pinned to that node, so a
multi-node job gets one service per node and each reward worker talks to its local one. A
dead service is restarted by Ray (``max_restarts=-1``); a request in flight when it died
fails and is scored as a retrieval error by the caller; the next request reaches the new
process. This module knows nothing of veRL or LLMs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

from verl_rec.metrics import first_positions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """Everything needed to open the engine and run the batcher (plain data, from the recipe)."""

    backend: str
    index_path: str
    backend_options: dict[str, Any] = field(default_factory=dict)
    batch_window_ms: float = 10.0
    max_batch_size: int = 256
    cache_size: int = 100_000
    name: str = "verl_rec_retrieval"
    namespace: str = "verl_rec"
    num_cpus: float = 1.0

    @classmethod
    def from_mapping(cls, values: Any) -> "ServiceConfig":
        values = dict(values)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown retrieval service key(s) {unknown}; known keys are {sorted(known)}")
        for key in ("backend", "index_path"):
            if not values.get(key):
                raise KeyError(f"retrieval service config needs {key!r} (e.g. backend: bm25s, index_path: /path/to/index)")
        values["backend_options"] = dict(values.get("backend_options") or {})
        return cls(**values)


class LRUCache:
    """A bounded mapping that forgets the least recently used key."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict = OrderedDict()

    def get(self, key):
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        return None

    def put(self, key, value) -> None:
        if self.capacity <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class ServiceStats:
    requests: int = 0
    batches: int = 0
    engine_queries: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    failed_batches: int = 0
    max_batch: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class RetrievalService:
    """The actor body (also usable in-process for tests and benchmarks)."""

    def __init__(self, config: ServiceConfig) -> None:
        from verl_rec.retrieval.factory import open_retriever
        from verl_rec.retrieval.index_meta import check_index_matches

        started = time.perf_counter()
        check_index_matches(config.index_path, config.backend, config.backend_options)
        retriever = open_retriever(config.backend, config.index_path, **config.backend_options)
        retriever.warmup()
        self._setup(config, retriever, time.perf_counter() - started)
        logger.info("verl-rec retrieval service up in %.1fs (pid %d, %s)", self.startup_s, os.getpid(), config.backend)

    def _setup(self, config: ServiceConfig, retriever: Any, startup_s: float = 0.0) -> None:
        """State of a running service around an open engine (tests pass a stub engine here)."""
        self.config = config
        self.retriever = retriever
        self.startup_s = startup_s
        self.cache = LRUCache(config.cache_size)
        self.stats = ServiceStats()
        self._pending: list[tuple[str, int, asyncio.Future]] = []
        self._flusher: Optional[asyncio.Task] = None
        # one engine thread: batches run in order, and a JVM sees one attached thread
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verl-rec-engine")

    # ---- public API -------------------------------------------------------------------
    async def ranking(self, query: str, k: int) -> list[str]:
        """The top-``k`` ids of ``query`` (micro-batched, deduplicated, cached)."""
        return await self._enqueue(query, k)

    async def target_positions(self, query: str, k: int, targets: Sequence[str]) -> dict[str, int]:
        """0-based rank of each target found in the top ``k`` distinct ids (absent = not found)."""
        return first_positions(await self._enqueue(query, k), targets, k)

    def info(self) -> dict[str, Any]:
        """Process id, start-up time, counters: what the tests and logs look at."""
        return {"pid": os.getpid(), "startup_s": self.startup_s, "cache_entries": len(self.cache),
                "config": asdict(self.config), **asdict(self.stats)}

    # ---- batching ---------------------------------------------------------------------
    async def _enqueue(self, query: str, k: int) -> list[str]:
        self.stats.requests += 1
        cached = self.cache.get((query, k))
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        future = asyncio.get_running_loop().create_future()
        self._pending.append((query, k, future))
        if len(self._pending) >= self.config.max_batch_size:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush_later())
        return await future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.config.batch_window_ms / 1000.0)
        self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        batch, self._pending = self._pending, []
        if self._flusher is not None and len(batch) >= self.config.max_batch_size:
            self._flusher.cancel()
            self._flusher = None
        if batch:
            asyncio.ensure_future(self._run_batch(batch))

    async def _run_batch(self, batch: list[tuple[str, int, asyncio.Future]]) -> None:
        depth = max(k for _, k, _ in batch)
        unique = list(dict.fromkeys(q for q, _, _ in batch))
        self.stats.batches += 1
        self.stats.batch_sizes.append(len(batch))
        self.stats.max_batch = max(self.stats.max_batch, len(batch))
        self.stats.deduplicated += len(batch) - len(unique)
        self.stats.engine_queries += len(unique)
        try:
            hits = await asyncio.get_running_loop().run_in_executor(self._engine_thread, self.retriever.search, unique, depth)
        except Exception as exc:  # every waiter learns; the caller scores a retrieval error
            self.stats.failed_batches += 1
            logger.exception("verl-rec retrieval service: a batch of %d queries failed", len(unique))
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError(f"retrieval failed: {exc!r}"))
            return
        rankings = {query: list(h.ids) for query, h in zip(unique, hits)}
        for query, k, future in batch:
            ranking = rankings[query][:k]
            self.cache.put((query, k), ranking)
            if not future.done():
                future.set_result(ranking)
