"""The retrieval service on real Ray: one per index, one per node, and the GPU it reserves.

* two jobs with different indexes in one Ray session each get their own index's rankings;
* on a 2-node ``ray.cluster_utils.Cluster``, reward workers placed as veRL 0.9.1 places them
  (round-robin over the alive nodes, pinned by node affinity) each use the service of their own
  node; with fewer workers than nodes, only the workers' nodes run a service;
* a service that reserves a GPU gets one from Ray (logical GPUs here: no CUDA on this machine),
  and one that cannot get one is refused with what to do instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import json
import tempfile

import pytest

from verl_rec.retrieval.service.config import ServiceConfig

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TEXTS = [f"{colour} {thing} model {i}" for i, (colour, thing) in
         enumerate((c, t) for c in ("red", "blue", "green") for t in ("shoe", "hat", "lamp", "desk"))]


def build_index(folder, id_prefix: str):
    """A small bm25s index whose doc ids start with ``id_prefix`` (same texts in every index)."""
    from verl_rec.retrieval.bm25s.build import build_bm25s_index

    folder.mkdir(parents=True)
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"{id_prefix}{i}", "contents": t}) + "\n" for i, t in enumerate(TEXTS)))
    return build_bm25s_index(corpus, folder / "index", progress=False)


@pytest.fixture(scope="module")
def two_indexes(tmp_path_factory):
    root = tmp_path_factory.mktemp("indexes")
    return build_index(root / "a", "A-"), build_index(root / "b", "B-")


@pytest.fixture
def ray_with_a_logical_gpu():
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="vrs_", dir="/tmp"))
    try:
        yield
    finally:
        ray.shutdown()


def test_two_jobs_with_different_indexes_get_their_own_rankings(two_indexes, ray_with_a_logical_gpu):
    from verl_rec.retrieval.service.client import RetrievalClient

    index_a, index_b = two_indexes
    job_a = RetrievalClient(ServiceConfig(backend="bm25s", index_path=str(index_a)))
    job_b = RetrievalClient(ServiceConfig(backend="bm25s", index_path=str(index_b)))
    job_a_again = RetrievalClient(ServiceConfig(backend="bm25s", index_path=str(index_a), batch_window_ms=1))

    async def scenario():
        rankings = [await job.ranking("blue lamp model 6", 3) for job in (job_a, job_b, job_a_again)]
        positions = [await job.target_positions("blue lamp model 6", 3, ["A-6", "B-6"]) for job in (job_a, job_b)]
        infos = [await job.info() for job in (job_a, job_b, job_a_again)]
        return rankings, positions, infos

    (ranked_a, ranked_b, ranked_a_again), (found_a, found_b), (info_a, info_b, info_a_again) = asyncio.run(scenario())
    assert ranked_a[0] == "A-6" and all(d.startswith("A-") for d in ranked_a)
    assert ranked_b[0] == "B-6" and all(d.startswith("B-") for d in ranked_b)
    assert found_a == {"A-6": 0} and found_b == {"B-6": 0}
    assert info_a["pid"] != info_b["pid"] and info_a["actor_name"] != info_b["actor_name"]
    assert info_a["config"]["index_path"] == str(index_a) and info_b["config"]["index_path"] == str(index_b)
    # the same engine with other batching settings joins the running service (the first job's batching)
    assert ranked_a_again == ranked_a and info_a_again["pid"] == info_a["pid"]


def test_a_service_reserves_its_gpu_and_one_without_a_free_gpu_is_refused(two_indexes, ray_with_a_logical_gpu):
    from verl_rec.retrieval.service.client import RetrievalClient
    from verl_rec.retrieval.service.placement import ServicePlacementError

    index_a, index_b = two_indexes
    holder = RetrievalClient(ServiceConfig(backend="bm25s", index_path=str(index_a), num_gpus=1))
    info = asyncio.run(holder.info())
    assert info["gpu_ids"] == ["0"], info  # Ray gave the service the (logical) GPU; a CUDA encoder would see it
    holder.check_can_start()  # its own service already holds the GPU: nothing to refuse
    assert ray.available_resources().get("GPU", 0) == 0

    late = RetrievalClient(ServiceConfig(backend="bm25s", index_path=str(index_b), num_gpus=1))
    with pytest.raises(ServicePlacementError, match=r"only 0 of its 1 GPU\(s\) are free"):
        late.check_can_start()
    with pytest.raises(ServicePlacementError, match=r"only 0 of its 1 GPU\(s\) are free"):
        asyncio.run(late.ranking("red shoe", 3))  # the lazy start refuses too, instead of pending forever
    cpu_job = RetrievalClient(ServiceConfig(backend="bm25s", index_path=str(index_b)))
    assert asyncio.run(cpu_job.ranking("red shoe model 0", 1)) == ["B-0"]  # the default stays on the CPU
    assert asyncio.run(cpu_job.info())["gpu_ids"] == []


def test_a_gpu_encoder_on_a_node_without_gpus_is_refused(tmp_path):
    from verl_rec.retrieval.service.client import RetrievalClient
    from verl_rec.retrieval.service.placement import ServicePlacementError

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="vrs_", dir="/tmp"))
    try:
        client = RetrievalClient(ServiceConfig(backend="dense", index_path=str(tmp_path / "dense"),
                                               backend_options={"device": "cuda"}))
        with pytest.raises(ServicePlacementError, match=r"asks Ray for 1 GPU on node \w+, which has 0 GPU\(s\) in Ray"):
            client.check_can_start()
    finally:
        ray.shutdown()


@ray.remote(num_cpus=0)
class RewardWorkerProbe:
    """Stands in for veRL's RewardLoopWorker: a process on one node that scores through a client."""

    def __init__(self, config: ServiceConfig) -> None:
        from verl_rec.retrieval.service.client import RetrievalClient

        self.client = RetrievalClient(config)

    async def probe(self, query: str) -> dict:
        ranking = await self.client.ranking(query, 1)
        info = await self.client.info()
        return {"worker_node": ray.get_runtime_context().get_node_id(), "service_node": info["node_id"],
                "service_pid": info["pid"], "service_name": info["actor_name"], "top": ranking}


def place_like_verl(config: ServiceConfig, num_workers: int) -> list:
    """Reward workers placed as veRL 0.9.1's RewardLoopManager places them: round-robin over the
    alive nodes that have CPUs, pinned by node affinity."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    return [RewardWorkerProbe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=False))
            .remote(config) for i in range(num_workers)]


def test_each_node_s_reward_workers_use_the_service_on_their_own_node(two_indexes):
    from ray.cluster_utils import Cluster

    index_a, _ = two_indexes
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2

        workers = place_like_verl(ServiceConfig(backend="bm25s", index_path=str(index_a)), num_workers=3)
        seen = ray.get([w.probe.remote("green hat model 9") for w in workers], timeout=300)
        assert all(s["top"] == ["A-9"] for s in seen)
        assert all(s["service_node"] == s["worker_node"] for s in seen), seen  # always the local service
        by_node = {}
        for s in seen:
            by_node.setdefault(s["worker_node"], set()).add(s["service_pid"])
        assert len(by_node) == 2 and all(len(pids) == 1 for pids in by_node.values()), by_node  # one per node, shared
        assert seen[0]["service_pid"] == seen[2]["service_pid"]  # workers 0 and 2 share node 1 (round-robin)

        # fewer reward workers than nodes: only the worker's node runs a service
        lone = place_like_verl(ServiceConfig(backend="bm25s", index_path=str(index_a), name="lone"), num_workers=1)
        (only,) = ray.get([w.probe.remote("green hat model 9") for w in lone], timeout=300)
        services = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("lone-")]
        assert services == [only["service_name"]] and only["service_node"] == only["worker_node"]
    finally:
        ray.shutdown()
        cluster.shutdown()
