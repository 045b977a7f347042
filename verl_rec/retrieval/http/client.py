"""One HTTP request with a timeout, retries and exponential backoff, on a kept-alive connection.

Standard library only (``http.client``): each calling thread keeps one connection per host, so
a search costs one round trip, not a TCP handshake. What is retried: connection errors,
timeouts, HTTP 5xx and 429 (an engine restarting or shedding load). What is not: other 4xx
(the request itself is wrong, sending it again would not help) and an answer that is not JSON.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from verl_rec.retrieval.http.response_path import preview

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 10.0


class HttpEngineError(RuntimeError):
    """A request the engine did not answer usefully; ``retryable`` says whether trying again could help."""

    def __init__(self, message: str, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status  # the HTTP status when the engine answered, None when it did not


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more tries after the first, waiting ``backoff_s * 2**n`` (with jitter, capped)."""

    retries: int = 2
    backoff_s: float = 0.2

    def __post_init__(self) -> None:
        if int(self.retries) < 0 or float(self.backoff_s) < 0:
            raise ValueError(f"backend_options.retries and backoff_s must be >= 0, got {self.retries}, {self.backoff_s}")

    def wait_s(self, attempt: int) -> float:
        return min(MAX_BACKOFF_S, float(self.backoff_s) * (2 ** attempt)) * (0.5 + random.random() / 2)


def auth_headers(auth_env: str | None, auth_header: str, auth_prefix: str) -> dict[str, str]:
    """The auth header, its secret read from the environment variable ``auth_env`` (never from a
    recipe); a variable that is not set fails now, naming it."""
    if not auth_env:
        return {}
    secret = os.environ.get(str(auth_env))
    if not secret:
        raise KeyError(f"backend_options.auth_env names the environment variable {auth_env!r}, which is not set "
                       f"in the retrieval service's process; export it on every node (its value goes into the "
                       f"{auth_header!r} header)")
    return {str(auth_header): f"{auth_prefix}{secret}"}


@dataclass
class HttpEngine:
    """Sends requests to one engine; safe to call from many threads at once."""

    timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if float(self.timeout_s) <= 0:
            raise ValueError(f"backend_options.timeout_s must be > 0, got {self.timeout_s}")
        self._local = threading.local()

    def request_json(self, method: str, url: str, body: bytes | None = None) -> Any:
        """The parsed JSON answer of ``method url``, after the retries the policy allows."""
        attempt = 0
        while True:
            try:
                return self._once(method, url, body)
            except HttpEngineError as exc:
                if not exc.retryable or attempt >= int(self.retry.retries):
                    if attempt:
                        raise HttpEngineError(f"{exc} (after {attempt + 1} tries)", exc.retryable, exc.status) from None
                    raise
            time.sleep(self.retry.wait_s(attempt))
            attempt += 1

    def _once(self, method: str, url: str, body: bytes | None) -> Any:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpEngineError(f"{url[:200]!r} is not an http(s) URL; set retrieval.index_path to the engine's "
                                  "base URL (e.g. http://127.0.0.1:8081) or fix backend_options.url", retryable=False)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {"Accept": "application/json", **self.headers}
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        key = (parts.scheme, parts.hostname, parts.port)
        while True:
            reused = key in getattr(self._local, "connections", {})
            connection = self._connection(*key)
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                status, raw = response.status, response.read()
                break
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, closed mid-answer
                self._drop_connection(*key)
                if reused and isinstance(exc, (ConnectionError, http.client.RemoteDisconnected)):
                    continue  # the engine closed an idle kept-alive connection: a fresh one, not a retry
                reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
                raise HttpEngineError(f"{method} {url[:200]} failed: {reason}", retryable=True) from None
        if response.will_close:
            self._drop_connection(*key)
        text = raw.decode("utf-8", "replace")
        if status >= 400:
            raise HttpEngineError(f"{method} {url[:200]} answered HTTP {status}: {preview(text)}",
                                  retryable=status in RETRIED_STATUSES, status=status)
        try:
            return json.loads(text)
        except ValueError:
            raise HttpEngineError(f"{method} {url[:200]} answered HTTP {status} with text that is not JSON: "
                                  f"{preview(text)}", retryable=False, status=status) from None

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        pool = getattr(self._local, "connections", None)
        if pool is None:
            pool = self._local.connections = {}
        key = (scheme, host, port)
        connection = pool.get(key)
        if connection is None:
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            connection = pool[key] = kind(host, port, timeout=float(self.timeout_s))
        return connection

    def _drop_connection(self, scheme: str, host: str, port: int | None) -> None:
        connection = getattr(self._local, "connections", {}).pop((scheme, host, port), None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close this thread's connections (the others close when their threads end)."""
        for connection in getattr(self._local, "connections", {}).values():
            connection.close()
        self._local.connections = {}


__all__ = ["HttpEngine", "HttpEngineError", "RETRIED_STATUSES", "RetryPolicy", "auth_headers"]
