"""The measured paths of the reward benchmark (:mod:`bench.run`): what each one runs, and how.

* the paper's loop (:class:`PaperLoop`): the released Rec-R1 reward, one pyserini
  ``search(q, k)`` per sample, one after another, in the driver;
* the raw engines: one ``Retriever.search`` or ``Retriever.target_positions`` batch call over
  a step's distinct queries (:func:`raw_run`, :func:`raw_positions_run`), no plumbing;
* our path (:class:`OurPath`): reward-worker Ray actors (:class:`RewardWorker`, veRL's
  ``RewardLoopWorker`` stand-in) that score with the reward manager's own scorer against a
  fresh ``RetrievalService`` actor;
* the settings every path shares: the ESCI BM25 recipe's reward kwargs and engine options.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.queries import Step

logger = logging.getLogger("bench")

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAP = "2g"
BACKENDS = ("lucene", "bm25s", "lucene-direct")


# ------------------------------------------------------------------------------------------
# The settings shared by every path
# ------------------------------------------------------------------------------------------


RECIPE = REPO_ROOT / "recipes" / "esci_bm25.yaml"
COMMON_RECIPE = REPO_ROOT / "recipes" / "common" / "rec_r1_grpo.yaml"


def recipe_reward_kwargs() -> dict[str, Any]:
    """``reward.reward_kwargs`` of the ESCI BM25 recipe (the real training setting), read as plain YAML."""
    import yaml

    try:
        kwargs = yaml.safe_load(RECIPE.read_text())["reward"]["reward_kwargs"]
    except Exception as exc:  # the bench must run even if the recipe moves
        logger.warning("could not read %s (%s); using the paper's settings", RECIPE, exc)
        kwargs = {"metric": "ndcg@1000", "eval_metrics": ["ndcg@10", "ndcg@20", "ndcg@100", "recall@100"],
                  "retrieval": {"backend": "lucene", "backend_options": {"k1": 1.2, "b": 0.75, "threads": 2, "heap": HEAP}}}
    return kwargs


def recipe_reward_workers(default: int = 2) -> int:
    """Reward workers a benchmark starts on this machine: the CPU size of ``reward.num_workers``.

    The recipes carry a GPU node's value (veRL's 8); the benchmarks keep the 2 they were always
    run with, so their numbers stay comparable.
    """
    return default


def reward_spec(k: int):
    from verl_rec.reward.contract import RewardSpec

    return RewardSpec(metric=f"ndcg@{k}")


def backend_options(backend: str, threads: int) -> tuple[str, dict[str, Any]]:
    """Service/engine backend kind and options for a benchmark backend label.

    ``lucene``: the options of ``recipes/esci_bm25.yaml`` (pyserini engine unless the recipe says
    otherwise) with ``threads`` search threads; ``lucene-direct``: the same with ``engine: direct``; ``bm25s``: the
    Lucene-exact bm25s index with ``threads`` numba threads.
    """
    if backend in ("lucene", "lucene-direct"):
        options = dict(recipe_reward_kwargs().get("retrieval", {}).get("backend_options") or {})
        options.setdefault("heap", HEAP)
        if options.get("heap") != HEAP:  # one JVM per process: the driver's engines share one heap setting
            options["heap"] = HEAP
        options["threads"] = threads  # the recipe's threads are a GPU node's; the bench sizes them here
        if backend == "lucene-direct":
            options["engine"] = "direct"
        return "lucene", options
    if backend == "bm25s":
        return "bm25s", {"threads": threads}
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def index_path(catalog: Path, backend: str) -> Path:
    return catalog / ("index_bm25s" if backend == "bm25s" else "index_lucene")


# ------------------------------------------------------------------------------------------
# Paper loop and raw engines (in the driver process)
# ------------------------------------------------------------------------------------------


class PaperLoop:
    """The released Rec-R1 reward: one pyserini ``search(q, k)`` per sample, one after another
    (the baseline our path is compared with, so deliberately not our scorer)."""

    def __init__(self, index: Path, k: int) -> None:
        from verl_rec.retrieval.lucene.java import ensure_java

        ensure_java(HEAP)
        from pyserini.search.lucene import LuceneSearcher

        self.searcher = LuceneSearcher(str(index))
        self.searcher.set_bm25(1.2, 0.75)
        self.k = k
        self.spec = reward_spec(k)

    def score(self, text: str, targets: Sequence[str]) -> float:
        from verl_rec.metrics import ndcg_at_k
        from verl_rec.reward.contract import reward_from_metric
        from verl_rec.reward.parsing import parse_output

        parsed = parse_output(text)
        if not parsed.ok:
            return self.spec.format_penalty
        hits = self.searcher.search(parsed.answer, k=self.k)
        ranking = [hit.docid for hit in hits]
        return reward_from_metric(ndcg_at_k(ranking, list(targets), self.k), self.spec)

    def run(self, step: Step) -> tuple[float, list[float]]:
        started = time.perf_counter()
        rewards = [self.score(s.text, s.targets) for s in step.samples]
        return time.perf_counter() - started, rewards

    def close(self) -> None:
        self.searcher.close()


def open_engine(backend: str, index: Path, threads: int):
    from verl_rec.retrieval.registry import open_retriever

    if backend != "bm25s":
        from verl_rec.retrieval.lucene.java import ensure_java

        ensure_java(HEAP)
    name, options = backend_options(backend, threads)
    engine = open_retriever(name, str(index), **options)
    engine.warmup()
    return engine


def raw_run(engine, step: Step, k: int) -> tuple[float, dict[str, list[str]]]:
    """One batch call over the distinct well-formed queries; returns seconds and id lists."""
    unique = step.unique_queries()
    started = time.perf_counter()
    hits = engine.search(unique, k)
    seconds = time.perf_counter() - started
    return seconds, {q: list(h.ids) for q, h in zip(unique, hits)}


def positions_request(step: Step) -> tuple[list[str], list[list[str]]]:
    """The engine call a step needs: its distinct well-formed queries, targets merged per query
    (what the service sends the engine for a step that arrives as one batch)."""
    wanted: dict[str, set[str]] = {}
    for sample in step.samples:
        if sample.query is not None:
            wanted.setdefault(sample.query, set()).update(sample.targets)
    unique = list(wanted)
    return unique, [sorted(wanted[q]) for q in unique]


def raw_positions_run(engine, step: Step, k: int) -> tuple[float, dict[str, dict[str, int]]]:
    """The engine's own target-positions call over the distinct queries (targets merged per query)."""
    unique, targets = positions_request(step)
    started = time.perf_counter()
    found = engine.target_positions(unique, k, targets)
    return time.perf_counter() - started, dict(zip(unique, found))


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int) -> float:
    a, b = list(a[:k]), list(b[:k])
    if not a and not b:
        return 1.0
    return len(set(a) & set(b)) / max(len(a), len(b))


# ------------------------------------------------------------------------------------------
# Our path: Ray reward workers -> the reward manager's scorer -> RetrievalService actor
# ------------------------------------------------------------------------------------------


class RewardWorker:
    """A stand-in for veRL's ``RewardLoopWorker`` holding our real reward path.

    ``manager``: a real :class:`~verl_rec.integration.reward_manager.RecR1RewardManager`, scoring
    with its own scorer; ``inline``: the same :class:`~verl_rec.reward.scorer.ServiceScorer`
    without importing veRL, for quick runs (a worker that imports veRL, i.e. torch, needs ~30 s
    of CPU to start).
    """

    def __init__(self, impl: str = "manager") -> None:
        self.impl = impl
        if impl == "manager":
            import verl_rec.integration.reward_manager  # noqa: F401  (imports verl: seconds)
        self.scorers: dict[str, Any] = {}

    def ready(self) -> int:
        return os.getpid()

    def setup(self, key: str, reward_kwargs: dict) -> None:
        if self.impl == "inline":
            from verl_rec.reward.scorer import ServiceScorer

            self.scorers[key] = ServiceScorer.from_reward_kwargs(reward_kwargs)
            return
        from omegaconf import OmegaConf

        from verl_rec.integration.reward_manager import RecR1RewardManager

        config = OmegaConf.create({"reward": {"reward_kwargs": reward_kwargs}})
        self.scorers[key] = RecR1RewardManager(config, tokenizer=None).scorer

    async def score_batch(self, key: str, texts: list[str], ground_truths: list[list[str]]):
        """Like ``RewardLoopWorker.compute_score_batch``: one task per sample, gathered."""
        from verl_rec.tasks.formats import DEFAULT_FORMAT

        scorer = self.scorers[key]
        tasks = [asyncio.create_task(scorer.score_text(t, g, DEFAULT_FORMAT)) for t, g in zip(texts, ground_truths)]
        results = await asyncio.gather(*tasks)
        return [r.score for r in results], [r.extra["retrieval_error"] for r in results]


class RssSampler:
    """Peak resident memory of one process, polled in a thread."""

    def __init__(self, pid: int, period_s: float = 0.02) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.period_s = period_s
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


@dataclass
class OurPath:
    """One service (fresh Ray actor) for one backend and catalog, driven by reward workers."""

    workers: list[Any]
    backend: str
    catalog: Path
    k: int
    threads: int
    tag: str
    handle: Any = None
    pid: int = 0
    startup_s: float = 0.0
    idle_rss: int = 0
    service_options: dict = field(default_factory=dict)  # ServiceConfig keys over the defaults

    def __post_init__(self) -> None:
        import ray

        from verl_rec.retrieval.service.client import get_or_start_service
        from verl_rec.retrieval.service.config import ServiceConfig

        name, options = backend_options(self.backend, self.threads)
        self.key = f"bench_{self.backend}_{self.tag}"
        self.config = {"backend": name, "index_path": str(index_path(self.catalog, self.backend)),
                       "backend_options": options, "name": self.key, "namespace": "verl_rec_bench",
                       **self.service_options}
        started = time.perf_counter()
        self.handle = get_or_start_service(ServiceConfig.from_mapping(self.config))
        info = ray.get(self.handle.info.remote())
        self.startup_s = time.perf_counter() - started
        self.pid = int(info["pid"])
        self.idle_rss = RssSampler(self.pid).sample()
        recipe = recipe_reward_kwargs()
        kwargs = {"metric": f"ndcg@{self.k}", "eval_metrics": list(recipe.get("eval_metrics") or []),
                  "retrieval": self.config}
        ray.get([w.setup.remote(self.key, kwargs) for w in self.workers])

    def info(self) -> dict:
        import ray

        return ray.get(self.handle.info.remote())

    def engine_call(self, step: Step) -> float:
        """Seconds of the raw engine call of ``step`` on the service's own engine (no plumbing)."""
        import ray

        queries, targets = positions_request(step)
        return ray.get(self.handle.time_engine_call.remote(queries, self.k, targets))

    def run(self, step: Step, n_workers: int) -> tuple[float, list[float], int]:
        import ray

        samples = step.samples
        chunks = np.array_split(np.arange(len(samples)), n_workers)
        started = time.perf_counter()
        refs = [self.workers[w].score_batch.remote(self.key, [samples[i].text for i in idx],
                                                   [list(samples[i].targets) for i in idx])
                for w, idx in enumerate(chunks)]
        outs = ray.get(refs)
        seconds = time.perf_counter() - started
        rewards = [r for scores, _ in outs for r in scores]
        errors = int(sum(sum(e) for _, e in outs))
        return seconds, rewards, errors

    def close(self) -> None:
        import psutil
        import ray

        ray.kill(self.handle, no_restart=True)
        try:
            psutil.Process(self.pid).wait(timeout=60)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            pass


def start_ray(n_workers: int, impl: str = "manager"):
    import ray

    import verl_rec

    # workers and the service import the same verl_rec as this driver (e.g. a patched checkout)
    package_root = str(Path(verl_rec.__file__).resolve().parents[1])
    env = {"TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    ray.init(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False, namespace="verl_rec_bench",
             logging_level=logging.WARNING, _temp_dir=tempfile.mkdtemp(prefix="vrb_", dir="/tmp"),
             runtime_env={"env_vars": env})
    actor = ray.remote(num_cpus=0)(RewardWorker)
    started = time.perf_counter()
    workers = [actor.options(max_concurrency=10_000).remote(impl) for _ in range(n_workers)]
    pids = ray.get([w.ready.remote() for w in workers])
    logger.info("%d reward workers up in %.1fs (pids %s)", n_workers, time.perf_counter() - started, pids)
    return workers
