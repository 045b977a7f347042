"""Find or start the node's retrieval service for an engine, and talk to it from any Ray process."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from verl_rec.retrieval.service.actor import RetrievalService
from verl_rec.retrieval.service.config import ServiceConfig
from verl_rec.retrieval.service.placement import check_node_gpus, reserved_gpus, service_name

logger = logging.getLogger(__name__)


def _node_gpus(node_id: str) -> tuple[float, float | None]:
    """Ray's GPU count on node ``node_id``, and how many are free (None when Ray cannot say)."""
    import ray

    total = next((float(n["Resources"].get("GPU", 0)) for n in ray.nodes() if n["NodeID"] == node_id), 0.0)
    try:  # no public per-node view of free resources in Ray 2.x; the cluster-wide one is an upper bound
        from ray._private.state import available_resources_per_node

        available = float(available_resources_per_node().get(node_id, {}).get("GPU", 0))
    except Exception:
        available = float(ray.available_resources().get("GPU", 0))
    return total, available


def check_can_start(config: ServiceConfig) -> None:
    """Refuse now, with what to do, a service this node cannot host (a GPU engine on a node
    without a free GPU), rather than leave it pending in Ray while every reward waits on it."""
    import ray

    if reserved_gpus(config) <= 0:
        return
    node_id = ray.get_runtime_context().get_node_id()
    try:
        ray.get_actor(service_name(config, node_id), namespace=config.namespace)
        return  # already running: its GPU is the one it holds
    except ValueError:
        pass
    check_node_gpus(config, node_id, *_node_gpus(node_id))


def get_or_start_service(config: ServiceConfig):
    """The handle of this node's service for ``config``'s engine, created on first use
    (``get_if_exists``; see :mod:`.placement` for its name and its GPU)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check_can_start(config)
    node_id = ray.get_runtime_context().get_node_id()
    actor_cls = ray.remote(RetrievalService)
    return actor_cls.options(
        name=service_name(config, node_id),
        namespace=config.namespace,
        get_if_exists=True,
        max_restarts=-1,
        max_concurrency=10_000,
        num_cpus=config.num_cpus,
        num_gpus=reserved_gpus(config),
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    ).remote(config)


class _CallQueue:
    """Requests made in one event-loop tick leave as ONE Ray call; while it is in flight, new
    requests queue up and leave together when it returns.

    ``send(requests)`` makes the call and returns one answer (or exception) per request;
    ``on_error`` runs when the call itself fails (the client forgets its service handle).
    """

    def __init__(self, send, on_error, max_per_call: int) -> None:
        self._send_call = send
        self._on_error = on_error
        self.max_per_call = max_per_call
        self._queue: list[tuple[tuple, asyncio.Future]] = []
        self._sender: asyncio.Future | None = None

    async def submit(self, request: tuple) -> Any:
        loop = asyncio.get_running_loop()
        if self._sender is not None and self._sender.get_loop() is not loop:  # used from a new event loop
            self._queue = [entry for entry in self._queue if entry[1].get_loop() is loop]
            self._sender = None
        future = loop.create_future()
        self._queue.append((request, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send())  # starts after this tick's requests are queued
        return await future

    async def _send(self) -> None:
        while self._queue:
            size = self.max_per_call
            batch, self._queue = self._queue[:size], self._queue[size:]
            try:
                answers = await self._send_call([request for request, _ in batch])
            except Exception as exc:
                self._on_error()
                answers = [exc] * len(batch)
            if len(answers) != len(batch):  # never leave a caller waiting for an answer that will not come
                answers = [RuntimeError(f"retrieval service gave {len(answers)} answers for {len(batch)} requests")] * len(batch)
            for (_, future), answer in zip(batch, answers):
                if future.done():
                    continue
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)


class RetrievalClient:
    """Async client: re-resolves the service after a failure so a restart is picked up, in a
    worker thread so that the event loop it serves never waits on Ray's lookups.

    ``target_positions`` calls made concurrently from one event loop (veRL's reward worker runs
    one task per sample) are sent as ONE Ray call (``target_positions_many``): while a call is
    in flight, new requests queue up and leave together when it returns. A Ray actor call costs
    more CPU on each side than scoring a sample (docs/performance.md); ``coalesce=False`` sends
    one call per request. Each call carries this client's id, so that the service closes a batch window as
    soon as every worker has sent. ``hits`` (a search tool's top k with short texts) coalesces
    the same way, through ``hits_many``.
    """

    max_requests_per_call = 1024

    def __init__(self, config: ServiceConfig, coalesce: bool = True) -> None:
        self.config = config
        self.coalesce = coalesce
        self._handle = None
        self._resolving: asyncio.Task | None = None
        self.caller_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._positions = _CallQueue(self._send_positions, self._forget_service, self.max_requests_per_call)
        self._hits = _CallQueue(self._send_hits, self._forget_service, self.max_requests_per_call)

    def check_can_start(self) -> None:
        """Fail now if this node cannot host the service (see :func:`check_can_start`)."""
        check_can_start(self.config)

    async def _service(self):
        """The service's handle, resolved off the event loop.

        Finding (or starting) the service calls ``ray.nodes()`` and ``ray.get_actor``, which
        block; on the loop they would stall every sample the reward worker or agent loop is
        serving. One resolution runs at a time in a worker thread, and every caller awaiting
        it meanwhile shares its result (or its error).
        """
        if self._handle is not None:
            return self._handle
        loop = asyncio.get_running_loop()
        task = self._resolving
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._resolving = loop.create_task(self._resolve())
        return await asyncio.shield(task)  # a cancelled caller does not cancel the others' resolution

    async def _resolve(self):
        handle = await asyncio.to_thread(self._resolve_handle)
        self._handle = handle
        return handle

    def _resolve_handle(self):
        """Blocking: find or start this node's service (runs in a worker thread)."""
        return get_or_start_service(self.config)

    def _forget_service(self) -> None:
        self._handle = None  # next call looks the (restarted) service up again

    async def target_positions(self, query: str, k: int, targets: Sequence[str]) -> dict[str, int]:
        if not self.coalesce:
            try:
                return await (await self._service()).target_positions.remote(query, k, list(targets))
            except Exception:
                self._forget_service()
                raise
        return await self._positions.submit((query, k, list(targets)))

    async def _send_positions(self, requests: list[tuple]) -> list[Any]:
        return await (await self._service()).target_positions_many.remote(requests, self.caller_id)

    async def hits(self, query: str, k: int) -> list[tuple[str, str]]:
        """The top ``k`` of ``query`` as ``(id, short text)`` pairs (needs the service's ``doc_text_path``)."""
        return [(doc, text) for doc, text in await self._hits.submit((query, k))]

    async def _send_hits(self, requests: list[tuple]) -> list[Any]:
        return await (await self._service()).hits_many.remote(requests)

    async def ranking(self, query: str, k: int) -> list[str]:
        try:
            return await (await self._service()).ranking.remote(query, k)
        except Exception:
            self._forget_service()
            raise

    async def info(self) -> dict[str, Any]:
        return await (await self._service()).info.remote()
