"""Anserini's REST server (``io.anserini.api.RestServer``, in pyserini's fat jar) as a real
HTTP search engine for tests, benchmarks and a local ``backend: http`` run.

The server answers ``GET /v1/{index}/search?query=...&hits=N`` with
``{"candidates": [{"docid", "score", "rank", "doc"}, ...]}``; ``{index}`` is an index folder (or
a prebuilt index name). It searches with Anserini's ``SimpleSearcher`` defaults, BM25 k1 0.9,
b 0.4, and offers no parameter to change them: our Lucene backend equals it at those values.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: what the REST server's searcher uses (Anserini's SimpleSearcher defaults; not configurable)
REST_BM25 = {"k1": 0.9, "b": 0.4}
#: ``backend_options`` of ``backend: http`` for this server, with ``params.index`` still to set
URL_TEMPLATE = "{base}/v1/{index}/search?query={query}&hits={k}"
IDS_PATH = "candidates[*].docid"
SCORES_PATH = "candidates[*].score"


def http_options(index_dir: str | Path, **extra: Any) -> dict[str, Any]:
    """The ``backend_options`` that search ``index_dir`` through an Anserini REST server."""
    return {"url": URL_TEMPLATE, "params": {"index": str(Path(index_dir).resolve())}, "ids_path": IDS_PATH,
            "scores_path": SCORES_PATH, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RestServer:
    """A running server: its base URL, its process and where its output goes."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def search_url(self, index_dir: str | Path, query: str, hits: int) -> str:
        return f"{self.url}/v1/{quote(str(index_dir), safe='')}/search?query={quote(query, safe='')}&hits={hits}"

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.is_file() else ""


def _java_command(port: int, heap: str) -> list[str]:
    from verl_rec.retrieval.lucene.java import anserini_jar, find_java_home

    jar = anserini_jar()
    if jar is None:
        raise FileNotFoundError("pyserini's Anserini fat jar was not found; pip install pyserini==1.6.0")
    home, _ = find_java_home()
    return [str(home / "bin" / "java"), f"-Xmx{heap}", "-cp", str(jar), "io.anserini.api.RestServer",
            "--host", "127.0.0.1", "--port", str(port)]


def start_rest_server(log_path: str | Path, index_dir: str | Path | None = None, port: int | None = None,
                      heap: str = "512m", timeout_s: float = 60.0) -> RestServer:
    """Start the server on ``port`` (a free one by default) and wait until it answers; with
    ``index_dir``, until it answers a search there (the searcher opens on first use)."""
    port = port or free_port()
    log_path = Path(log_path)
    log = log_path.open("w")
    process = subprocess.Popen(_java_command(port, heap), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    log.close()
    server = RestServer(f"http://127.0.0.1:{port}", process, log_path)
    probe = server.search_url(index_dir, "test", 1) if index_dir else f"{server.url}/openapi.yaml"
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the Anserini REST server exited with {process.returncode}: {server.log_tail()}")
        try:
            with urllib.request.urlopen(probe, timeout=5) as response:
                response.read()
            return server
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                stop_rest_server(server)
                raise TimeoutError(f"the Anserini REST server did not answer {probe} in {timeout_s:.0f}s ({exc}): "
                                   f"{server.log_tail()}") from None
            time.sleep(0.25)


def stop_rest_server(server: RestServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=15)


@contextlib.contextmanager
def rest_server(log_path: str | Path, index_dir: str | Path | None = None, **options: Any) -> Iterator[RestServer]:
    server = start_rest_server(log_path, index_dir, **options)
    try:
        yield server
    finally:
        stop_rest_server(server)


__all__ = ["IDS_PATH", "REST_BM25", "RestServer", "SCORES_PATH", "URL_TEMPLATE", "free_port", "http_options",
           "rest_server", "start_rest_server", "stop_rest_server"]
