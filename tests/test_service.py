"""The shared retrieval service: batching, dedupe, cache, failures, and restart after death."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time

import pytest

from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.retrieval.service.actor import RetrievalService
from verl_rec.retrieval.service.cache import LRUCache
from verl_rec.retrieval.service.config import ServiceConfig


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


def test_an_engine_answer_of_the_wrong_shape_fails_the_requests_instead_of_hanging():
    class ShortAnswers(CountingRetriever):
        def target_positions(self, queries, k, targets):  # a buggy engine: one answer too few
            return super().target_positions(queries, k, targets)[:-1]

    service = make_service(ShortAnswers(), batch_window_ms=5)

    async def scenario():
        return await asyncio.wait_for(_burst(service, ["a b", "c b", "a b"]), timeout=10)

    results = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in results), results
    again = asyncio.run(scenario())  # the service still answers later requests (and fails them again)
    assert all(isinstance(r, RuntimeError) for r in again) and "gave 1 answers for 2 queries" in str(again[0])
    assert service.info()["failed_batches"] == 2


class SlowRetriever(CountingRetriever):
    """A CountingRetriever whose engine call takes ``delay`` seconds (the engine is busy)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def search(self, queries, k):
        time.sleep(self.delay)
        return super().search(queries, k)


def test_requests_queued_while_the_engine_is_busy_form_one_deduplicated_batch():
    engine = SlowRetriever(delay=0.2)
    service = make_service(engine, batch_window_ms=5)

    async def scenario():
        first = asyncio.ensure_future(_burst(service, ["a b"]))
        await asyncio.sleep(0.05)  # the engine is now busy with the first batch
        late = [asyncio.ensure_future(_burst(service, [q])) for q in ["c b", "d b", "c b", "a b"] * 3]
        return await first, await asyncio.gather(*late)

    first, late = asyncio.run(scenario())
    assert first == [{"b": 1}] and all(r == [{"b": 1}] for r in late)
    # one batch behind the busy engine, each distinct query once; the late "a b" waited for the running one
    assert [sorted(c) for c in engine.calls] == [["a b"], ["c b", "d b"]]
    assert service.info()["engine_queries"] == 3


def test_target_positions_many_answers_in_order_and_isolates_failures():
    service = make_service(CountingRetriever(), batch_window_ms=1)
    answers = asyncio.run(service.target_positions_many([("a b", 10, ["b"]), ("x y", 10, ["y", "x"]), ("z", 10, [])]))
    assert answers == [{"b": 1}, {"x": 0, "y": 1}, {}]
    failing = make_service(CountingRetriever(fail=True), batch_window_ms=1)
    out = asyncio.run(failing.target_positions_many([("a", 10, ["a"])]))
    assert isinstance(out[0], RuntimeError) and "engine down" in str(out[0])


def test_a_malformed_request_fails_alone_and_a_cancelled_caller_does_not_block_others():
    engine = SlowRetriever(delay=0.1)
    service = make_service(engine, batch_window_ms=1)
    answers = asyncio.run(service.target_positions_many([("a b", 10, ["b"]), ("c", 10, "c"), ("c b", 10, ["c"])]))
    assert answers[0] == {"b": 1} and answers[2] == {"c": 0}
    assert isinstance(answers[1], RuntimeError) and "not a single string" in str(answers[1])

    async def scenario():
        impatient = asyncio.ensure_future(service.target_positions("x y", 10, ["y"]))
        patient = asyncio.ensure_future(service.target_positions("x y", 10, ["y"]))
        await asyncio.sleep(0.02)
        impatient.cancel()
        return await asyncio.wait_for(patient, timeout=10), impatient.cancelled()

    assert asyncio.run(scenario()) == ({"y": 1}, True)


def test_engine_target_positions_are_used_and_cut_at_k():
    class PositionsEngine(CountingRetriever):
        def __init__(self):
            super().__init__()
            self.position_calls = []

        def target_positions(self, queries, k, targets):
            self.position_calls.append((list(queries), k, [list(t) for t in targets]))
            return super().target_positions(queries, k, targets)

    engine = PositionsEngine()
    service = make_service(engine, batch_window_ms=20)

    async def scenario():
        return await asyncio.gather(service.target_positions("a b c", 3, ["c"]),
                                    service.target_positions("a b c", 2, ["c", "a"]))

    deep, shallow = asyncio.run(scenario())
    assert deep == {"c": 2} and shallow == {"a": 0}  # "c" is at 2: outside the top 2
    assert engine.position_calls == [(["a b c"], 3, [["a", "c"]])]  # one query, targets merged, deepest k


def test_a_window_closes_once_every_recent_caller_has_sent(monkeypatch):
    """A GRPO step's workers send together: the batch starts at the last of them, not at the end
    of the window; a known worker that has not sent is waited for (up to the window), one silent
    for longer than the caller TTL is not."""
    import verl_rec.retrieval.service.actor as service_module

    engine = CountingRetriever()
    service = make_service(engine, batch_window_ms=300)

    async def step(*callers: str) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(service.target_positions_many([(f"{c} {time.perf_counter()} b", 10, ["b"])], caller=c)
                               for c in callers))
        return time.perf_counter() - started

    async def scenario():
        await step("w1", "w2")  # both become known
        together = await step("w1", "w2")
        one_missing = await step("w1")
        monkeypatch.setattr(service_module, "_CALLER_TTL_S", 0.05)
        await asyncio.sleep(0.1)
        await step("w1")  # w1 is fresh again; w2 has been silent for longer than the TTL
        alone = await step("w1")
        return together, one_missing, alone

    together, one_missing, alone = asyncio.run(scenario())
    assert together < 0.15 and alone < 0.15, (together, alone)
    assert one_missing >= 0.25  # w2 was expected: the window ran out
    assert [len(c) for c in engine.calls] == [2, 2, 1, 1, 1]  # each step's calls made one batch


def test_time_engine_call_runs_the_engine_alone():
    """The plumbing reference: one engine call as given, no batch, cache or counters touched."""
    engine = CountingRetriever()
    service = make_service(engine, batch_window_ms=20)
    seconds = asyncio.run(service.time_engine_call(["a b", "a b", "c"], 5, [["b"], ["b"], ["c"]]))
    assert seconds > 0 and engine.calls == [["a b", "a b", "c"]]  # exactly what was asked, repeats included
    info = service.info()
    assert info["requests"] == info["batches"] == info["cache_entries"] == 0 and info["engine_seconds"] == 0
    with pytest.raises(ValueError, match="2 queries but 1 target lists"):
        asyncio.run(service.time_engine_call(["a", "b"], 5, [["a"]]))


def test_client_sends_concurrent_requests_in_one_call():
    from verl_rec.retrieval.service.client import RetrievalClient

    service = make_service(CountingRetriever(), batch_window_ms=1)
    calls = []

    class Method:
        def __init__(self, fn):
            self.fn = fn

        def remote(self, *args):
            calls.append(args)
            return self.fn(*args)

    class Handle:  # stands in for the Ray actor handle
        target_positions_many = Method(service.target_positions_many)

    client = RetrievalClient(ServiceConfig(backend="counting", index_path="-"))
    client._handle = Handle()

    async def scenario():
        return await asyncio.gather(*(client.target_positions(q, 10, ["b"]) for q in ["a b", "c b", "d"] * 5))

    answers = asyncio.run(scenario())
    assert answers == [{"b": 1}, {"b": 1}, {}] * 5
    assert len(calls) == 1 and len(calls[0][0]) == 15
    assert asyncio.run(scenario()) == answers and len(calls) == 2  # the same client from a new event loop


def test_resolving_the_service_does_not_block_the_event_loop(monkeypatch):
    """Finding the service (ray.nodes, ray.get_actor) blocks: it runs off the loop, once for
    all concurrent callers (one Ray call each: coalesce=False), while the loop keeps serving other samples."""
    from verl_rec.retrieval.service import client as client_module

    service = make_service(CountingRetriever(), batch_window_ms=1)
    lookups = []

    class Handle:
        class target_positions:  # noqa: N801
            @staticmethod
            def remote(*args):
                return service.target_positions(*args)

    def slow_lookup(config):  # a stand-in for get_or_start_service on a busy cluster
        lookups.append(config)
        time.sleep(0.5)
        return Handle()

    monkeypatch.setattr(client_module, "get_or_start_service", slow_lookup)
    client = client_module.RetrievalClient(ServiceConfig(backend="counting", index_path="-"), coalesce=False)

    async def scenario():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        answers = await asyncio.gather(*(client.target_positions(q, 10, ["b"]) for q in ["a b", "c b", "d"]))
        stop.set()
        await ticking
        return answers, ticks

    answers, ticks = asyncio.run(scenario())
    assert answers == [{"b": 1}, {"b": 1}, {}]
    assert ticks >= 20, f"the event loop ran only {ticks} ticks in a 0.5 s lookup: the lookup blocked it"
    assert len(lookups) == 1  # one resolution shared by the three concurrent callers


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
    from verl_rec.retrieval.bm25s.build import build_bm25s_index
    from verl_rec.retrieval.service.client import RetrievalClient

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

    from verl_rec.retrieval.bm25s.build import build_bm25s_index
    from verl_rec.retrieval.index_metadata import IndexMismatchError

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": f"red shoe model {i}"}) + "\n" for i in range(20)))
    index = build_bm25s_index(corpus, tmp_path / "bm25s", progress=False)
    with pytest.raises(IndexMismatchError, match="'bm25s' index but the recipe asks for backend 'lucene'"):
        RetrievalService(ServiceConfig(backend="lucene", index_path=str(index)))
    with pytest.raises(IndexMismatchError, match="k1=1.2 but the recipe sets k1=0.9"):
        RetrievalService(ServiceConfig(backend="bm25s", index_path=str(index), backend_options={"k1": 0.9}))
    service = RetrievalService(ServiceConfig(backend="bm25s", index_path=str(index), backend_options={"k1": 1.2}))
    assert asyncio.run(service.ranking("red shoe model 3", 5))[0] == "d3"


# ---- one service per engine and node, and what it reserves (retrieval/service/placement.py) ----

def test_the_service_name_is_per_engine_not_per_cluster(tmp_path, monkeypatch):
    from verl_rec.retrieval.service.placement import service_name

    def name(**config):
        return service_name(ServiceConfig(**{"backend": "bm25s", "index_path": str(tmp_path / "a"), **config}), "n1")

    base = name()
    assert base.startswith("verl_rec_retrieval-bm25s-") and base.endswith("@n1")
    assert name() == base  # stable: every reward worker finds the same service
    assert name(batch_window_ms=50, max_batch_size=8, cache_size=0) == base  # batching does not change the answers
    assert name(index_path=str(tmp_path / "b")) != base  # another index: another service
    assert name(backend_options={"k1": 0.9}) != base  # other engine options: another service
    assert name(backend="lucene") != base
    monkeypatch.chdir(tmp_path)
    assert name(index_path="a") == base  # a relative path names the same index as its absolute form
    assert service_name(ServiceConfig(backend="bm25s", index_path=str(tmp_path / "a")), "n2") == base[:-2] + "n2"


def test_an_engine_uri_names_the_same_engine_from_every_folder(tmp_path, monkeypatch):
    from verl_rec.retrieval.service.placement import engine_identity

    config = ServiceConfig(backend="bm25s", index_path="http://search.example:9200/products")
    here = engine_identity(config)
    monkeypatch.chdir(tmp_path)
    assert engine_identity(config) == here  # a URI is never made absolute: one engine for every node and folder
    assert here["index_path"] == "http://search.example:9200/products"


def test_a_gpu_engine_reserves_its_gpu_or_is_refused():
    from verl_rec.retrieval.service.placement import ServicePlacementError, reserved_gpus

    def gpus(**options):
        num_gpus = options.pop("num_gpus", None)
        return reserved_gpus(ServiceConfig(backend="dense", index_path="x", backend_options=options, num_gpus=num_gpus))

    assert gpus() == 0 and gpus(device="cpu", threads=2) == 0  # the default stays on the CPU
    assert gpus(device="cuda") == 1 and gpus(encoder={"device": "cuda:0"}) == 1
    assert gpus(device="cuda", encoder={"device": "cpu"}) == 0  # encoder.device wins, as in DenseRetriever
    assert gpus(device="cuda", num_gpus=0.25) == 0.25 and gpus(device="cuda:1", num_gpus=2) == 2
    assert gpus(num_gpus=1) == 1  # asked for explicitly: reserved even for a CPU engine
    with pytest.raises(ServicePlacementError, match=r"runs on cuda .*num_gpus is 0.*device: cpu"):
        gpus(device="cuda", num_gpus=0)
    with pytest.raises(ServicePlacementError, match=r"sees only the 1 GPU\(s\) Ray reserves for it, as cuda:0"):
        gpus(device="cuda:1")
    with pytest.raises(ServicePlacementError, match="num_gpus must be >= 0"):
        gpus(num_gpus=-1)
    with pytest.raises(ServicePlacementError, match="num_gpus is 0"):  # refused where the recipe is read
        ServiceConfig.from_mapping({"backend": "dense", "index_path": "x", "backend_options": {"device": "cuda"},
                                    "num_gpus": 0})


def test_use_gpu_reserves_a_gpu_only_when_faiss_will_use_it(tmp_path, monkeypatch, caplog):
    """faiss searches only a flat index on a GPU, and only in a GPU build: otherwise ``use_gpu``
    reserves nothing (a reserved GPU would sit idle, taken from training) and says why."""
    import json
    import logging

    from verl_rec.retrieval.dense import faiss_gpu
    from verl_rec.retrieval.service import placement

    def index(kind):
        folder = tmp_path / kind
        folder.mkdir()
        (folder / "verl_rec_index.json").write_text(json.dumps({"backend": "dense", "kind": kind}))
        return str(folder)

    flat, hnsw = index("flat"), index("hnsw")

    def gpus(path, **options):
        return placement.reserved_gpus(ServiceConfig(backend="dense", index_path=path, backend_options=options))

    monkeypatch.setattr(placement, "_warned_unused", set(), raising=False)
    gpu_build = faiss_gpu.faiss_has_gpu_build()
    with caplog.at_level(logging.WARNING, logger=placement.__name__):
        assert gpus(flat, use_gpu=True) == (1 if gpu_build else 0)
        assert gpus(hnsw, use_gpu=True) == 0  # no GPU HNSW in faiss, whatever the build
        assert gpus(hnsw, use_gpu=True, device="cuda") == 1  # the encoder still runs on the GPU
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "retrieval.backend_options.use_gpu" in messages and "'hnsw'" in messages
    assert gpu_build or "no GPU support" in messages
    with pytest.raises(placement.ServicePlacementError, match=r"use_gpu is 'require'.*'hnsw'"):
        gpus(hnsw, use_gpu="require")

    monkeypatch.setattr(faiss_gpu, "faiss_has_gpu_build", lambda: True)  # as on a machine with faiss-gpu
    assert gpus(flat, use_gpu=True) == 1 and gpus(flat, use_gpu="require") == 1
    assert gpus(str(tmp_path / "elsewhere"), use_gpu=True) == 1  # an index it cannot read here: as asked
    assert gpus(hnsw, use_gpu=True) == 0
    monkeypatch.setattr(faiss_gpu, "faiss_has_gpu_build", lambda: False)
    assert gpus(flat, use_gpu=True) == 0
    with pytest.raises(placement.ServicePlacementError, match="no GPU support"):
        gpus(flat, use_gpu="require")


def test_a_node_without_a_free_gpu_is_refused_with_what_to_do():
    from verl_rec.retrieval.service.placement import ServicePlacementError, check_node_gpus

    config = ServiceConfig(backend="dense", index_path="/idx", backend_options={"device": "cuda"})
    check_node_gpus(config, "n1", total=8, available=1)
    check_node_gpus(ServiceConfig(backend="bm25s", index_path="/idx"), "n1", total=0, available=0)  # CPU: no GPU needed
    with pytest.raises(ServicePlacementError, match=r"node n1, which has 0 GPU\(s\) in Ray"):
        check_node_gpus(config, "n1", total=0, available=0)
    with pytest.raises(ServicePlacementError, match=r"only 0 of its 8 GPU\(s\) are free.*n_gpus_per_node"):
        check_node_gpus(config, "n1", total=8, available=0)
