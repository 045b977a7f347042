"""The shared per-node retrieval service: one engine, many reward workers.

veRL scores one sample per request from ``reward.num_workers`` Ray actors; opening a JVM or a
large index in each would multiply memory and lose batching. So every worker talks to ONE
named Ray actor per node and engine (``get_if_exists``, named and pinned by :mod:`.placement`)
that opens the engine in its own process (warmed up at start; the JVM never crosses a fork),
micro-batches concurrent requests (``batch_window_ms``, ``max_batch_size``; a window closes
early once every reward worker seen in the last ``_CALLER_TTL_S`` has sent into it), answers
repeated queries once, keeps an LRU cache, and returns only the positions of the caller's
targets (:meth:`Retriever.target_positions`; ``target_positions_many`` takes many requests in
one Ray call). Ray restarts a dead service (``max_restarts=-1``); the request in flight fails
and is scored as a retrieval error. docs/architecture.md ("The retrieval service") says why.
This module knows nothing of veRL or LLMs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from verl_rec.metrics import first_positions
from verl_rec.retrieval.service.batching import Batch, Reply, Request, normalise_targets, request_key
from verl_rec.retrieval.service.cache import LRUCache
from verl_rec.retrieval.service.config import ServiceConfig

logger = logging.getLogger(__name__)
_KEPT_BATCH_SIZES = 1_000  # ServiceStats.batch_sizes keeps the most recent ones
# a caller (reward worker) silent for longer is not waited for when a batch window opens;
# longer than a training step's rollout, so that every step's workers are known
_CALLER_TTL_S = 1_800.0


@dataclass
class ServiceStats:
    calls: int = 0  # target_positions_many calls (a reward worker sends its concurrent requests in one)
    requests: int = 0
    batches: int = 0
    engine_queries: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    failed_batches: int = 0
    refused_queries: int = 0  # queries the engine refused (answered with an error, not cached)
    max_batch: int = 0
    engine_seconds: float = 0.0  # wall time inside the engine: the rest of a request's time is plumbing
    batch_sizes: list[int] = field(default_factory=list)


def _ray_placement() -> dict[str, Any]:
    """The Ray node, actor name and GPUs of this process (None outside a Ray actor)."""
    placement: dict[str, Any] = {"node_id": None, "actor_name": None, "gpu_ids": None}
    try:
        import ray

        if ray.is_initialized():
            context = ray.get_runtime_context()
            placement.update(node_id=context.get_node_id(), actor_name=context.get_actor_name(),
                             gpu_ids=list(context.get_accelerator_ids().get("GPU", [])))
    except Exception:  # outside Ray (tests, benchmarks in-process): nothing to report
        logger.debug("no Ray placement to report", exc_info=True)
    return placement


class RetrievalService:
    """The actor body (also usable in-process for tests and benchmarks)."""

    def __init__(self, config: ServiceConfig) -> None:
        from verl_rec.retrieval.index_metadata import check_index_matches
        from verl_rec.retrieval.registry import open_retriever

        started = time.perf_counter()
        check_index_matches(config.index_path, config.backend, config.backend_options)
        retriever = open_retriever(config.backend, config.index_path, **config.backend_options)
        retriever.warmup()
        doc_texts = None
        if config.doc_text_path:
            from verl_rec.retrieval.doc_texts import DocTexts

            doc_texts = DocTexts.from_corpus(config.doc_text_path, config.doc_text_chars)
        self._setup(config, retriever, time.perf_counter() - started, doc_texts)
        logger.info("verl-rec retrieval service up in %.1fs (pid %d, %s)", self.startup_s, os.getpid(), config.backend)

    def _setup(self, config: ServiceConfig, retriever: Any, startup_s: float = 0.0, doc_texts: Any = None) -> None:
        """State of a running service around an open engine (tests pass a stub engine here)."""
        self.config = config
        self.retriever = retriever
        self.doc_texts = doc_texts  # DocTexts for hits_many, or None
        self.startup_s = startup_s
        self.cache = LRUCache(config.cache_size)
        self.stats = ServiceStats()
        self._pending: list[Request] = []
        # request key -> the replies waiting for it while its batch is in the engine
        self._running: dict[tuple, list[tuple[Reply, int]]] = {}
        self._drainer: asyncio.Future | None = None
        self._full: asyncio.Future | None = None  # set when the open window may close early
        self._callers: dict[str, float] = {}  # caller id -> when it last sent a call
        self._window_callers: set[str] = set()  # callers with a request in the pending batch
        # one engine thread: batches run in order (engines parallelise inside a batch)
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verl-rec-engine")

    # ---- public API -------------------------------------------------------------------
    async def ranking(self, query: str, k: int) -> list[str]:
        """The top-``k`` ids of ``query`` (micro-batched, deduplicated, cached)."""
        return list(await self._one(query, k, None))

    async def target_positions(self, query: str, k: int, targets: Sequence[str]) -> dict[str, int]:
        """0-based rank of each target found in the top ``k`` distinct ids (absent = not found)."""
        return dict(await self._one(query, k, normalise_targets(targets)))

    async def target_positions_many(self, requests: Sequence[tuple[str, int, Sequence[str]]],
                                    caller: str | None = None) -> list[Any]:
        """Many ``(query, k, targets)`` requests in one call, answered in order.

        A request that failed has a ``RuntimeError`` in its slot (the others are still answered).
        The call waits on ONE future, filled slot by slot (no future or task per request: this
        runs for every sample, on the cores the engine needs). ``caller`` names the sending
        process (:class:`~verl_rec.retrieval.service.client.RetrievalClient` does): a batch
        window closes once every recent caller has sent into it.
        """
        self.stats.calls += 1
        reply = Reply(len(requests), asyncio.get_running_loop().create_future())
        for slot, (query, k, targets) in enumerate(requests):
            try:
                self._submit(query, int(k), normalise_targets(targets), reply, slot)
            except (TypeError, ValueError) as exc:  # a malformed request fails alone
                reply.fill(slot, exc)
        if caller is not None:
            self._arrived_from(str(caller))
        answers = await reply.future if reply.missing else reply.answers
        return [RuntimeError(str(a)) if isinstance(a, BaseException) else dict(a) for a in answers]

    async def hits_many(self, requests: Sequence[tuple[str, int]]) -> list[Any]:
        """Many ``(query, k)`` requests in one call: per request its top ``k`` as ``[id, short
        text]`` pairs, best first (a failed request: a ``RuntimeError`` in its slot).

        What a search tool shows a policy. The rankings take the same path as every other
        request (micro-batched, deduplicated, cached); the texts come from ``doc_text_path``.
        Sends no caller id and opens no batch window: a reward window never waits for a rollout
        worker, and a call that finds the engine free runs at once (calls that arrive while the
        engine is busy form the next batch).
        """
        self.stats.calls += 1
        if self.doc_texts is None:
            error = RuntimeError("this retrieval service has no document texts: set doc_text_path (the corpus "
                                 "JSONL, e.g. reward.reward_kwargs.retrieval.doc_text_path) to show search results")
            return [error] * len(requests)
        reply = Reply(len(requests), asyncio.get_running_loop().create_future(), window=False)
        for slot, (query, k) in enumerate(requests):
            try:
                if not isinstance(query, str):
                    raise TypeError(f"a query must be a string, not {type(query).__name__}")
                self._submit(query, int(k), None, reply, slot)
            except (TypeError, ValueError) as exc:
                reply.fill(slot, exc)
        answers = await reply.future if reply.missing else reply.answers
        texts = self.doc_texts
        return [RuntimeError(str(a)) if isinstance(a, BaseException) else [[doc, texts.get(doc)] for doc in a]
                for a in answers]

    async def time_engine_call(self, queries: Sequence[str], k: int, targets: Sequence[Sequence[str]]) -> float:
        """Wall seconds of ONE ``target_positions`` call of this service's engine over
        ``queries``, run straight in the engine thread: no batching, dedupe, cache or counters.

        The engine without the plumbing, in the same process, memory and (for Lucene) JIT state
        as the batches it serves: the reference a plumbing measurement needs, since the same
        engine opened in another process differs by more than the plumbing does
        (docs/performance.md).
        """
        if len(queries) != len(targets):
            raise ValueError(f"{len(queries)} queries but {len(targets)} target lists")
        queries, targets = list(queries), [list(t) for t in targets]

        def work() -> float:
            started = time.perf_counter()
            self.retriever.target_positions(queries, int(k), targets)
            return time.perf_counter() - started

        return await asyncio.get_running_loop().run_in_executor(self._engine_thread, work)

    def info(self) -> dict[str, Any]:
        """Process id, where it runs, start-up time, counters: what the tests and logs look at."""
        return {"pid": os.getpid(), **_ray_placement(), "startup_s": self.startup_s, "cache_entries": len(self.cache),
                "config": asdict(self.config), **asdict(self.stats)}

    # ---- batching ---------------------------------------------------------------------
    async def _one(self, query: str, k: int, targets: tuple[str, ...] | None) -> Any:
        reply = Reply(1, asyncio.get_running_loop().create_future())
        self._submit(query, k, targets, reply, 0)
        answer = (await reply.future if reply.missing else reply.answers)[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _submit(self, query: str, k: int, targets: tuple[str, ...] | None, reply: Reply, slot: int) -> None:
        """Answer slot ``slot`` of ``reply`` from the cache, from the same request in flight, or
        from the next engine batch. Answers are shared with the cache: callers copy them."""
        self.stats.requests += 1
        key = request_key(query, k, targets)
        cached = self.cache.get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            reply.fill(slot, cached)
            return
        waiting = self._running.get(key)
        if waiting is not None:  # the same question is in the engine right now: wait for that answer
            self.stats.deduplicated += 1
            waiting.append((reply, slot))
            return
        self._pending.append((query, k, targets, key, reply, slot))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        elif len(self._pending) >= self.config.max_batch_size:
            self._close_window()  # a full batch need not wait for the window

    def _arrived_from(self, caller: str) -> None:
        """Remember that ``caller`` sent a call; close the window if every recent caller has."""
        now = time.monotonic()
        self._callers[caller] = now
        if self._pending:
            self._window_callers.add(caller)
        if self._window_complete(now):
            self._close_window()

    def _window_complete(self, now: float | None = None) -> bool:
        """Nothing more to wait for: a full batch, or a call from every caller seen recently."""
        if len(self._pending) >= self.config.max_batch_size:
            return True
        if not self._window_callers:
            return False
        now = time.monotonic() if now is None else now
        for caller, seen in list(self._callers.items()):
            if now - seen > _CALLER_TTL_S:
                del self._callers[caller]  # gone (a worker that stopped): no longer waited for
            elif caller not in self._window_callers:
                return False
        return True

    def _close_window(self) -> None:
        if self._full is not None and not self._full.done():
            self._full.set_result(None)

    async def _drain(self) -> None:
        """Run the pending requests in engine batches until none is left.

        The first batch waits up to ``batch_window_ms`` for concurrent requests (less if
        ``max_batch_size`` arrive, or a call from every recent caller; not at all if it holds
        only search-tool requests, see :meth:`hits_many`); later batches are
        whatever queued up while the engine was busy, handed to it as soon as it returns: before
        the answers of the last one are handed out, so the engine never waits for this event
        loop.
        """
        windowed = any(request[4].window for request in self._pending)
        if self.config.batch_window_ms > 0 and windowed and not self._window_complete():
            self._full = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._full), self.config.batch_window_ms / 1000.0)
            except asyncio.TimeoutError:
                pass
            self._full = None
        running = self._start_next()
        while running is not None:
            batch, engine_call = running
            try:
                answers = await engine_call
            except Exception as exc:  # every waiter learns; the caller scores a retrieval error
                self.stats.failed_batches += 1
                logger.exception("verl-rec retrieval service: a batch of %d requests failed", len(batch.requests))
                answers = exc
            running = self._start_next()  # the engine goes on while the answers are handed out
            if isinstance(answers, Exception):
                self._fail(batch, answers)
            else:
                self._deliver(batch, *answers)

    def _start_next(self) -> tuple[Batch, asyncio.Future] | None:
        """Send the next ``max_batch_size`` pending requests to the engine thread (None if none)."""
        if not self._pending:
            return None
        size = self.config.max_batch_size
        batch = Batch(self._pending[:size])
        del self._pending[:size]
        self._window_callers.clear()  # the next window counts its own callers
        try:
            engine_call = self._start_batch(batch)
        except Exception as exc:
            logger.exception("verl-rec retrieval service: preparing a batch failed")
            engine_call = asyncio.get_running_loop().create_future()
            engine_call.set_exception(exc)
        return batch, engine_call

    def _start_batch(self, batch: Batch) -> asyncio.Future:
        """Hand a batch to the engine thread: each distinct query once, targets merged per query;
        the ranking call and the target-positions call each at the deepest ``k`` asked of it."""
        requests = batch.requests
        self.stats.batches += 1
        self.stats.batch_sizes.append(len(requests))
        if len(self.stats.batch_sizes) > 2 * _KEPT_BATCH_SIZES:  # a long run: keep the recent ones
            del self.stats.batch_sizes[:-_KEPT_BATCH_SIZES]
        self.stats.max_batch = max(self.stats.max_batch, len(requests))
        self.stats.deduplicated += len(requests) - len(batch.by_query)
        self.stats.engine_queries += len(batch.by_query)
        need_ranking = {q for q, _, t, _, _, _ in requests if t is None}
        wanted: dict[str, set[str]] = {}
        for q, _, t, key, _, _ in requests:
            self._running.setdefault(key, [])
            if t is not None and q not in need_ranking:
                wanted.setdefault(q, set()).update(t)
        ranked = [q for q in batch.by_query if q in need_ranking]
        located = [q for q in batch.by_query if q in wanted]
        # each engine call goes as deep as its own requests need: a search tool's top 10 is not
        # ranked to a reward's depth of 1000 because both sit in one batch
        rank_depth = max((k for q, k, *_ in requests if q in need_ranking), default=0)
        locate_depth = max((k for q, k, *_ in requests if q in wanted), default=0)
        loop = asyncio.get_running_loop()

        def work() -> tuple[dict[str, list[str] | None], dict[str, dict[str, int] | None]]:
            started = time.perf_counter()
            hits = self.retriever.search(ranked, rank_depth) if ranked else []
            rankings = {q: None if getattr(h, "error", None) else list(h.ids) for q, h in zip(ranked, hits)}
            positions = {}
            if located:
                found = self.retriever.target_positions(located, locate_depth, [sorted(wanted[q]) for q in located])
                if len(found) != len(located):
                    raise RuntimeError(f"{type(self.retriever).__name__}.target_positions gave {len(found)} "
                                       f"answers for {len(located)} queries")
                positions = dict(zip(located, found))
            self.stats.engine_seconds += time.perf_counter() - started
            return rankings, positions

        return loop.run_in_executor(self._engine_thread, work)

    def _deliver(self, batch: Batch, rankings: dict[str, list[str] | None],
                 positions: dict[str, dict[str, int] | None]) -> None:
        """Answer every request of ``batch``, each cut at its own ``k`` and targets, and remember
        the answers in the cache. A query the engine refused (``None``) is answered with an
        error (the caller counts a retrieval error) and is not cached."""
        answered: dict[tuple, Any] = {}  # a repeated request is cut once
        try:
            for query, requests in batch.by_query.items():
                refused = rankings[query] is None if query in rankings else positions[query] is None
                self.stats.refused_queries += int(refused)
                for _, k, targets, key, reply, slot in requests:
                    answer = answered.get(key)
                    if answer is None:
                        if refused:
                            answer = RuntimeError(f"the engine refused the query {query[:80]!r}")
                        elif targets is None:
                            answer = rankings[query][:k]
                        elif query in rankings:
                            answer = first_positions(rankings[query], targets, k)
                        else:
                            answer = {t: p for t, p in positions[query].items() if t in targets and p < k}
                        answered[key] = answer
                        if not refused:
                            self.cache.put(key, answer)
                        for waiter, waiter_slot in self._running.pop(key, ()):
                            waiter.fill(waiter_slot, answer)
                    reply.fill(slot, answer)
        except Exception as exc:  # a bug past the engine call must not leave waiters hanging
            logger.exception("verl-rec retrieval service: answering a batch failed")
            self._fail(batch, exc)

    def _fail(self, batch: Batch, exc: Exception) -> None:
        """Every request of ``batch`` not answered yet, and everyone waiting on one of them, gets the error."""
        error = RuntimeError(f"retrieval failed: {exc!r}")
        for _, _, _, key, reply, slot in batch.requests:
            reply.fill(slot, error)  # a slot already answered keeps its answer
            for waiter, waiter_slot in self._running.pop(key, ()):
                waiter.fill(waiter_slot, error)
