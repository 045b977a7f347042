"""A scripted search engine on the standard library's ``http.server``: real sockets, real HTTP,
with failures on demand (500s, timeouts, text that is not JSON, answers without ids).

Its documents are words: a query's ranking is its distinct words, in order, so a test knows
every answer. ``GET /search?q=...&n=...`` and ``POST /search`` (``{"q": ..., "n": ...}``)
answer ``{"hits": {"hits": [{"_id": word, "_score": n - i}, ...]}, "echo": <the query read>}``.
A query holding a trigger word misbehaves: ``fail500`` (``fail500x2``: the first 2 times only),
``slow`` (sleeps past any test's timeout), ``garbage`` (not JSON), ``noids`` (no ``hits`` key);
``pause`` holds its answer 0.2 s (``max_in_flight``: how many ``pause`` requests overlapped).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SLOW_S = 3.0


class ScriptedEngine:
    """The server, its base URL and what it saw (requests per query, headers of the last one)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.last_headers: dict[str, str] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                args = parse_qs(parts.query, keep_blank_values=True)
                engine.answer(self, args.get("q", [""])[0], int(args.get("n", ["10"])[0]))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8"))
                engine.answer(self, body["q"], int(body["n"]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler, query: str, n: int) -> None:
        paused = "pause" in query.split()
        with self._lock:
            self.seen[query] += 1
            self.in_flight += paused
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._answer(handler, query, n)
        finally:
            with self._lock:
                self.in_flight -= paused

    def _answer(self, handler: BaseHTTPRequestHandler, query: str, n: int) -> None:
        self.last_headers = dict(handler.headers)
        words = query.split()
        status, body = 200, None
        fail_times = next((int(w[len("fail500x"):]) for w in words if w.startswith("fail500x")), None)
        if "fail500" in words or (fail_times is not None and self.seen[query] <= fail_times):
            status, body = 500, b'{"error": "engine failure"}'
        elif "slow" in words:
            time.sleep(SLOW_S)
        elif "pause" in words:
            time.sleep(0.2)
        elif "garbage" in words:
            body = b"<html>not json</html>"
        elif "noids" in words:
            body = json.dumps({"took": 3, "result": []}).encode()
        if body is None:
            ranked = list(dict.fromkeys(words))[:n]
            body = json.dumps({"hits": {"hits": [{"_id": w, "_score": float(len(ranked) - i)} for i, w in enumerate(ranked)]},
                               "echo": query}, ensure_ascii=False).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up (a timeout test)
            pass

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


GET_OPTIONS = {"url": "{base}/search?q={query}&n={k}", "ids_path": "hits.hits[*]._id", "scores_path": "hits.hits[*]._score"}
POST_OPTIONS = {"url": "{base}/search", "method": "POST", "body": {"q": "{query}", "n": "{k}"},
                "ids_path": "hits.hits[*]._id", "scores_path": "hits.hits[*]._score"}


class FaultyProxy:
    """A pass-through proxy to a real engine that refuses every ``fail_every``-th request after
    the first (HTTP 400: not retried, so each is one retrieval error); counts what it did."""

    def __init__(self, upstream: str, fail_every: int = 2) -> None:
        import urllib.error
        import urllib.request

        self.forwarded = 0
        self.refused = 0
        self._count = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with proxy._lock:
                    proxy._count += 1
                    refuse = proxy._count > 1 and proxy._count % fail_every == 0
                    proxy.refused += int(refuse)
                    proxy.forwarded += int(not refuse)
                if refuse:
                    status, body = 400, b'{"error": "fault injected by the test proxy"}'
                else:
                    try:
                        with urllib.request.urlopen(upstream + self.path, timeout=30) as response:
                            status, body = response.status, response.read()
                    except urllib.error.HTTPError as exc:
                        status, body = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
