"""The shared retrieval service: batching, dedupe, cache, failures, and restart after death."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time

import pytest

from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.retrieval.service import LRUCache, RetrievalService, ServiceConfig


class CountingRetriever(Retriever):
    """Doc ``w`` matches queries holding the word ``w``; records every engine call."""

    name = "counting"

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def search(self, queries, k):
        self.calls.append(list(queries))
        if self.fail:
            raise RuntimeError("engine down")
        return [SearchHits(ids=list(dict.fromkeys(q.split()))[:k]) for q in queries]


def make_service(retriever: Retriever, **config) -> RetrievalService:
    service = RetrievalService.__new__(RetrievalService)  # skip opening a real engine
    RetrievalService._setup(service, ServiceConfig(backend="counting", index_path="-", **config), retriever)
    return service


async def _burst(service: RetrievalService, queries: list[str], k: int = 10):
    return await asyncio.gather(*(service.target_positions(q, k, ["b"]) for q in queries), return_exceptions=True)


def test_concurrent_requests_are_batched_and_deduplicated():
    engine = CountingRetriever()
    service = make_service(engine, batch_window_ms=20)
    queries = ["a b", "a b", "c b", "a b", "d"] * 4
    results = asyncio.run(_burst(service, queries))
    assert results[0] == {"b": 1} and results[2] == {"b": 1} and results[4] == {}
    assert len(engine.calls) == 1 and sorted(engine.calls[0]) == ["a b", "c b", "d"]
    info = service.info()
    assert info["requests"] == 20 and info["batches"] == 1 and info["deduplicated"] == 17


def test_max_batch_size_splits_a_burst_and_cache_answers_repeats():
    engine = CountingRetriever()
    service = make_service(engine, batch_window_ms=50, max_batch_size=4, cache_size=100)
    asyncio.run(_burst(service, [f"q{i} b" for i in range(10)]))
    assert [len(c) for c in engine.calls] == [4, 4, 2]
    asyncio.run(_burst(service, ["q1 b", "q2 b"]))
    assert len(engine.calls) == 3 and service.info()["cache_hits"] == 2


def test_engine_failure_reaches_every_waiter_and_is_counted():
    service = make_service(CountingRetriever(fail=True))
    results = asyncio.run(_burst(service, ["a", "b", "a"]))
    assert all(isinstance(r, RuntimeError) for r in results)
    assert service.info()["failed_batches"] == 1


def test_lru_cache_is_bounded():
    cache = LRUCache(2)
    cache.put("a", 1), cache.put("b", 2), cache.get("a"), cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and len(cache) == 2


def test_config_errors_name_the_key():
    with pytest.raises(KeyError, match="batch_windw_ms"):
        ServiceConfig.from_mapping({"backend": "bm25s", "index_path": "x", "batch_windw_ms": 5})
    with pytest.raises(KeyError, match="index_path"):
        ServiceConfig.from_mapping({"backend": "bm25s"})


def test_missing_index_fails_early_with_the_path(tmp_path):
    with pytest.raises(Exception, match=str(tmp_path / "nowhere")):
        RetrievalService(ServiceConfig(backend="bm25s", index_path=str(tmp_path / "nowhere")))


@pytest.mark.slow
def test_dead_service_is_restarted_on_the_next_request(vaswani, tmp_path):
    """Kill the service process: the request in flight fails, the next one reaches a new process."""
    ray = pytest.importorskip("ray")
    from verl_rec.retrieval.bm25s_backend import build_bm25s_index
    from verl_rec.retrieval.service_client import RetrievalClient

    index = build_bm25s_index(vaswani.corpus_path, tmp_path / "bm25s", progress=False)
    ray.init(num_cpus=4, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="vrs_", dir="/tmp"))
    try:
        client = RetrievalClient(ServiceConfig(backend="bm25s", index_path=str(index), name="svc_restart"))

        async def scenario():
            first = await client.ranking("microwave dielectric", 10)
            old_pid = (await client.info())["pid"]
            os.kill(old_pid, signal.SIGKILL)
            time.sleep(1.0)
            failed = False
            try:
                await client.ranking("antenna design", 10)
            except Exception:
                failed = True  # the caller scores this as a retrieval error
            for _ in range(60):  # Ray restarts the actor (max_restarts=-1)
                try:
                    again = await client.ranking("microwave dielectric", 10)
                    break
                except Exception:
                    await asyncio.sleep(1.0)
            new_pid = (await client.info())["pid"]
            return first, again, old_pid, new_pid, failed

        first, again, old_pid, new_pid, _ = asyncio.run(scenario())
        assert first == again and len(first) == 10
        assert new_pid != old_pid
    finally:
        ray.shutdown()


def test_an_index_that_does_not_fit_the_recipe_is_refused(tmp_path):
    import json

    from verl_rec.retrieval.bm25s_backend import build_bm25s_index
    from verl_rec.retrieval.index_meta import IndexMismatchError

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": f"red shoe model {i}"}) + "\n" for i in range(20)))
    index = build_bm25s_index(corpus, tmp_path / "bm25s", progress=False)
    with pytest.raises(IndexMismatchError, match="'bm25s' index but the recipe asks for backend 'lucene'"):
        RetrievalService(ServiceConfig(backend="lucene", index_path=str(index)))
    with pytest.raises(IndexMismatchError, match="k1=1.2 but the recipe sets k1=0.9"):
        RetrievalService(ServiceConfig(backend="bm25s", index_path=str(index), backend_options={"k1": 0.9}))
    service = RetrievalService(ServiceConfig(backend="bm25s", index_path=str(index), backend_options={"k1": 1.2}))
    assert asyncio.run(service.ranking("red shoe model 3", 5))[0] == "d3"
