"""The service's request bookkeeping: one call's reply slots, one engine batch, request keys.

Kept apart from the actor so that the batching policy (:mod:`.actor`) reads as policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


class Reply:
    """The answers of one call, filled slot by slot; its future resolves with the last one.

    A slot holds an answer or the exception that replaced it; the first fill of a slot wins.
    A caller that gave up (its future is cancelled) is skipped. ``window``: whether its requests
    wait for a batch window (a reward step's burst) or go to the engine as soon as it is free
    (a search tool's calls, which arrive one by one).
    """

    __slots__ = ("answers", "missing", "future", "window")

    def __init__(self, size: int, future: asyncio.Future, window: bool = True) -> None:
        self.answers: list[Any] = [None] * size
        self.missing = size
        self.future = future
        self.window = window

    def fill(self, slot: int, answer: Any) -> None:
        if self.answers[slot] is not None:
            return
        self.answers[slot] = answer
        self.missing -= 1
        if self.missing == 0 and not self.future.done():
            self.future.set_result(self.answers)


# (query, k, normalised targets or None for a full ranking, cache key, reply, slot in the reply)
Request = tuple[str, int, tuple[str, ...] | None, tuple, Reply, int]


class Batch:
    """The requests of one engine batch, and the same grouped by query in arrival order (each
    distinct query goes to the engine once)."""

    __slots__ = ("requests", "by_query")

    def __init__(self, requests: list[Request]) -> None:
        self.requests = requests
        self.by_query: dict[str, list[Request]] = {}
        for request in requests:
            self.by_query.setdefault(request[0], []).append(request)


def request_key(query: str, k: int, targets: tuple[str, ...] | None) -> tuple:
    """Cache and in-flight key: a full ranking, or the positions of one target set."""
    return (query, k) if targets is None else (query, k, targets)


def normalise_targets(targets: Sequence[str]) -> tuple[str, ...]:
    """Targets as a hashable, order-free key (the answer does not depend on their order)."""
    if isinstance(targets, str):
        raise TypeError("targets must be a list of ids, not a single string")
    return tuple(sorted({str(t) for t in targets}))


__all__ = ["Batch", "Reply", "Request", "normalise_targets", "request_key"]
