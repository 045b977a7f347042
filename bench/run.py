"""The reward-throughput benchmark: the paper's reward loop against our reward path, in one run.

``python -m bench.run --products 1200000 --out bench/results/``

On the same synthetic catalog (:mod:`bench.catalog`) and the same GRPO-shaped model outputs
(:mod:`bench.queries`), at k=1000, it measures in one process tree:

* ``paper loop``: the Rec-R1 released reward (defect 5 of ``shared/notes/rec-r1-method.md``):
  per sample, sequentially, a format check, ONE single-query pyserini
  ``LuceneSearcher.search(q, k=1000)``, then NDCG@1000 from the hit list;
* ``ours/<backend>``: our reward path end to end, driven as veRL 0.9 drives it. ``--workers``
  (default: the recipes' ``reward.num_workers``) reward-worker Ray actors (veRL's
  ``RewardLoopWorker``: one asyncio task per sample, all concurrent) each hold a real
  :class:`~verl_rec.integration.reward_manager.RecR1RewardManager` and call its ``score_text``
  (``parse_output`` -> ``RetrievalClient.target_positions`` on the node's named Ray actor
  :class:`~verl_rec.retrieval.service.actor.RetrievalService`, with micro-batching, dedupe and cache
  -> ``score_parsed``). The step's samples are split into contiguous chunks, one per worker,
  as veRL splits a batch. Our path and its raw reference run ``--paired-steps`` (24) steps,
  the paper loop the first ``--steps`` (6) of them. Token decoding is not included (it is the
  same in every path);
* ``raw/<backend>``: the engine alone, no plumbing: ONE ``Retriever.search`` batch call over
  the step's distinct well-formed queries, in the driver; and ONE ``Retriever.target_positions``
  call over them (``+positions``: the engine call our service makes, which reads no hit ids; the
  least work any reward path must do), made directly on the service's own engine
  (``RetrievalService.time_engine_call``: same process, memory and JIT state; the same index
  opened in another process runs the same steps up to ~8% apart) and, beside it, on the same
  index opened in the driver. Both ``+positions`` calls run step by step alternating with our
  path, so all three are measured on the same machine state;
* service memory: peak RSS (psutil) of the service process during the steps, on a fresh
  service with 1 and with ``--memory-workers`` (8, veRL's default) workers;
* rank agreement: overlap@k of bm25s and Lucene top-k on every distinct query, and the rewards
  of every path against the paper loop's.

Table columns: ``x paper`` is samples/s over the paper loop's; ``vs raw`` is the extra wall time
of our path over the raw engine call it makes (``+positions`` on the service's engine), timed
step by step next to it (the plumbing target); ``vs drv`` the same over the index opened in the
driver; ``in eng.`` is the share of our path's wall time that the service's engine was busy
(``RetrievalService`` counts it), i.e. the plumbing measured inside the same run.

Throughput is always *samples per second of one GRPO step* (640 model outputs, duplicates and
malformed ones included), so every row divides the same work by its wall time. Untimed warm-up
steps (other queries than the timed steps) run first: ``--warmup-steps`` (40) on every fresh
service, one or two on each engine of the driver. A JVM's JIT compiler goes on speeding Lucene
up for tens of steps (141 -> 430 samples/s over the first 8 steps of a new service; one 1.2M
engine, 8 timed steps after 6, 12, 24 and 48 warm-up steps: 1161, 1058, 952, 911 ms per step),
and the driver's single JVM has run every earlier path: a service compared after a few warm-up
steps is compared with a warmer engine, not with the same engine without plumbing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from bench.catalog import CACHE_ROOT, catalog_dir, corpus_stats, ensure_catalog
from bench.queries import LENGTHS, QueryFactory, Step, describe

logger = logging.getLogger("bench")

REPO_ROOT = Path(__file__).resolve().parents[1]
WARM_BASE = 1_000  # warm-up steps are steps 1000, 1001, ...: other queries than the timed steps 1, 2, ...
HEAP = "2g"
DEFAULT_SIZES = (100_000, 400_000, 1_200_000)
BACKENDS = ("lucene", "bm25s", "lucene-direct")
DEFAULT_BACKENDS = ("lucene", "bm25s")
TARGETS = {"bm25s_vs_paper": 10.0, "lucene_vs_paper": 2.0, "plumbing_max": 0.20, "overlap_min": 0.99,
           "memory_max": 0.10}


def _log(msg: str, *args: Any) -> None:
    logger.info(msg, *args)


# ------------------------------------------------------------------------------------------
# The reward contract, shared by every path
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


def recipe_reward_workers(default: int = 8) -> int:
    """``reward.num_workers`` of the recipes (the ESCI recipe's own value, else the common one)."""
    import yaml

    for path in (RECIPE, COMMON_RECIPE):
        try:
            value = (yaml.safe_load(path.read_text()).get("reward") or {}).get("num_workers")
        except Exception as exc:
            logger.warning("could not read %s (%s)", path, exc)
            continue
        if value:
            return int(value)
    return default  # veRL's default


def reward_spec(k: int):
    from verl_rec.reward.scoring import RewardSpec

    return RewardSpec(metric=f"ndcg@{k}")


def backend_options(backend: str, threads: int) -> tuple[str, dict[str, Any]]:
    """Service/engine backend kind and options for a benchmark backend label.

    ``lucene``: the options of ``recipes/esci_bm25.yaml`` as they are (pyserini engine unless the
    recipe says otherwise); ``lucene-direct``: the same with ``engine: direct``; ``bm25s``: the
    Lucene-exact bm25s index with ``threads`` numba threads.
    """
    if backend in ("lucene", "lucene-direct"):
        options = dict(recipe_reward_kwargs().get("retrieval", {}).get("backend_options") or {})
        options.setdefault("heap", HEAP)
        if options.get("heap") != HEAP:  # one JVM per process: the driver's engines share one heap setting
            options["heap"] = HEAP
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
    """The released Rec-R1 reward: one pyserini ``search(q, k)`` per sample, one after another."""

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
        from verl_rec.reward.parsing import parse_output
        from verl_rec.reward.scoring import reward_from_metric

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
# Our path: Ray reward workers -> RecR1RewardManager.score_text -> RetrievalService actor
# ------------------------------------------------------------------------------------------


class InlineManager:
    """``RecR1RewardManager.score_text`` restated without importing veRL (``--worker-impl inline``).

    Same calls in the same order (format spec, ground truth, ``parse_output``,
    ``RetrievalClient.target_positions``, ``score_parsed``); only for quick runs, since a
    worker that imports veRL (torch) needs ~30 s of CPU to start.
    """

    def __init__(self, reward_kwargs: dict) -> None:
        from verl_rec.retrieval.service.client import RetrievalClient
        from verl_rec.reward.settings import RewardSettings

        self.settings = RewardSettings.from_mapping(reward_kwargs)
        self.client = RetrievalClient(self.settings.retrieval)

    async def score_text(self, text: str, ground_truth: Any, prompt_format: str):
        from verl_rec.reward.parsing import FormatSpec, parse_output
        from verl_rec.reward.scoring import parse_ground_truth, score_parsed
        from verl_rec.tasks.formats import get_format

        base = get_format(prompt_format).spec
        spec = FormatSpec(answer_key=base.answer_key, require_think=base.require_think,
                          think_prefilled=self.settings.think_prefilled, max_query_words=self.settings.max_query_words)
        qrels = parse_ground_truth(ground_truth)
        parsed = parse_output(text, spec)
        found = None
        if parsed.ok:
            try:
                found = await self.client.target_positions(parsed.answer, self.settings.reward.depth, list(qrels))
            except Exception:
                logger.exception("retrieval failed")
        return score_parsed(parsed, found, qrels, self.settings.reward)


class RewardWorker:
    """A stand-in for veRL's ``RewardLoopWorker`` holding our real reward manager."""

    def __init__(self, impl: str = "manager") -> None:
        self.impl = impl
        if impl == "manager":
            import verl_rec.integration.reward_manager  # noqa: F401  (imports verl: seconds)
        self.managers: dict[str, Any] = {}

    def ready(self) -> int:
        return os.getpid()

    def setup(self, key: str, reward_kwargs: dict) -> None:
        if self.impl == "inline":
            self.managers[key] = InlineManager(reward_kwargs)
            return
        from omegaconf import OmegaConf

        from verl_rec.integration.reward_manager import RecR1RewardManager

        config = OmegaConf.create({"reward": {"reward_kwargs": reward_kwargs}})
        self.managers[key] = RecR1RewardManager(config, tokenizer=None)

    async def score_batch(self, key: str, texts: list[str], ground_truths: list[list[str]], metric: str):
        """Like ``RewardLoopWorker.compute_score_batch``: one task per sample, gathered."""
        manager = self.managers[key]
        tasks = [asyncio.create_task(manager.score_text(t, g, "bm25_query")) for t, g in zip(texts, ground_truths)]
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
        self._thread: Optional[threading.Thread] = None

    def sample(self) -> int:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    def __enter__(self) -> "RssSampler":
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

        from verl_rec.retrieval.service.config import ServiceConfig
        from verl_rec.retrieval.service.client import get_or_start_service

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
                                                   [list(samples[i].targets) for i in idx], f"ndcg@{self.k}")
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
    _log("%d reward workers up in %.1fs (pids %s)", n_workers, time.perf_counter() - started, pids)
    return workers


# ------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """Results of one (catalog size, query length)."""

    size: int
    length: str
    shape: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)  # label -> {"seconds", "qps", ...}
    overlap: dict = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)


def _qps(samples: int, seconds: float) -> float:
    return samples / seconds if seconds > 0 else float("inf")


def run_cell_engines(cell: Cell, catalog: Path, steps: list[Step], warm: Sequence[Step], backends: Sequence[str], k: int,
                     threads: int, baseline: bool) -> tuple[dict[str, list[float]], dict[str, dict[str, list[str]]]]:
    """Paper loop and raw engines in this process; return paper rewards and raw rankings."""
    n_samples = sum(len(s.samples) for s in steps)
    rewards: dict[str, list[float]] = {}
    rankings: dict[str, dict[str, list[str]]] = {}
    if baseline:
        loop = PaperLoop(index_path(catalog, "lucene"), k)
        for sample in warm[0].samples:  # a whole step: the JVM's JIT needs hundreds of queries
            loop.score(sample.text, sample.targets)
        seconds, paper = 0.0, []
        for step in steps:
            s, r = loop.run(step)
            seconds, paper = seconds + s, paper + r
        loop.close()
        rewards["paper"] = paper
        cell.paths["paper"] = {"seconds": seconds, "qps": _qps(n_samples, seconds)}
        _log("  paper loop: %.1f samples/s (%.1fs)", cell.paths["paper"]["qps"], seconds)
    for backend in backends:
        unique = sum(len(s.unique_queries()) for s in steps)
        # search() only: the engine call our path makes (target_positions) is timed step by step
        # next to our path (run_ours), so that both see the same machine
        engine = open_engine(backend, index_path(catalog, backend), threads)
        raw_run(engine, warm[0], k)
        seconds, found = 0.0, {}
        for step in steps:
            s, f = raw_run(engine, step, k)
            seconds += s
            found.update(f)
        rankings[backend] = found
        cell.paths[f"raw/{backend}"] = {"seconds": seconds, "qps": _qps(n_samples, seconds),
                                        "unique_queries": unique, "queries_per_s": _qps(unique, seconds)}
        _log("  raw %s search: %.1f samples/s (%d distinct queries in %.2fs)", backend,
             cell.paths[f"raw/{backend}"]["qps"], unique, seconds)
        engine.close()
        del engine
    return rewards, rankings


def run_ours(path: OurPath, steps: list[Step], warm: Sequence[Step], n_workers: int, reference: Any = None,
             k: int = 1000) -> dict[str, Any]:
    """Warm-up steps, then the timed steps; service counters and peak RSS.

    Each timed step also runs as ONE raw ``target_positions`` call on the service's own engine
    (:meth:`RetrievalService.time_engine_call`: the same process, memory and JIT state, no
    plumbing), right before or after our path (alternating): the reference of the plumbing
    target. With a ``reference`` engine (the same index opened in this process; the first two
    warm-up steps run on it too, the driver's JVM being warm already), the step also runs on it,
    next to the other two: the engine outside Ray. On a shared 2-core VM the speed of the
    machine drifts by up to 2x within minutes, so only measurements taken side by side can be
    compared; and the same engine opened in two processes runs the same steps up to ~8% apart.
    """
    for i, step in enumerate(warm):
        path.run(step, n_workers)
        if reference is not None and i < 2:
            raw_positions_run(reference, step, k)
    before = path.info()
    step_seconds, service_step_seconds, driver_step_seconds, rewards, errors = [], [], [], [], 0

    def references(step: Step) -> None:
        service_step_seconds.append(path.engine_call(step))
        if reference is not None:
            driver_step_seconds.append(raw_positions_run(reference, step, k)[0])

    with RssSampler(path.pid) as rss:
        rss_start = rss.sample()
        for i, step in enumerate(steps):
            if i % 2 == 0:
                references(step)
            s, r, e = path.run(step, n_workers)
            step_seconds.append(s)
            rewards, errors = rewards + r, errors + e
            if i % 2 == 1:
                references(step)
    seconds = sum(step_seconds)
    after = path.info()
    counters = {key: after[key] - before[key] for key in ("requests", "batches", "engine_queries", "cache_hits",
                                                           "deduplicated", "failed_batches", "engine_seconds")}
    n_samples = sum(len(s.samples) for s in steps)
    return {"seconds": seconds, "qps": _qps(n_samples, seconds), "workers": n_workers, "retrieval_errors": errors,
            "service": counters, "rss_start": rss_start, "rss_peak": rss.peak, "rss_idle": path.idle_rss,
            "startup_s": path.startup_s, "rewards": rewards, "step_seconds": step_seconds,
            "raw_service_seconds": sum(service_step_seconds), "raw_service_step_seconds": service_step_seconds,
            **({"raw_seconds": sum(driver_step_seconds), "raw_step_seconds": driver_step_seconds}
               if reference is not None else {})}


def _path_entry(out: dict) -> dict:
    """What a ``run_ours`` result keeps in the table's paths (the rewards go to ``agreement``)."""
    return {k: v for k, v in out.items() if k != "rewards"}


def _memory_entry(out: dict) -> dict:
    """What a ``run_ours`` result keeps for the service-memory target."""
    return {k: out[k] for k in ("rss_idle", "rss_start", "rss_peak", "qps")}


def _agreement(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return {"max_abs_diff": float(diff.max(initial=0.0)), "share_equal": float(np.mean(diff <= 1e-9)) if len(diff) else 1.0}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted(set(args.sizes))
    headline = max(sizes)
    pool = min(min(sizes), 100_000)
    backends = list(args.backends)
    lengths = list(args.lengths)
    # enough workers for every run; a run with n workers drives the first n (the others idle)
    n_workers = max(args.workers, args.memory_workers if args.memory else 1)
    workers = start_ray(n_workers, args.worker_impl) if backends else []
    cells: list[Cell] = []
    catalogs: dict[int, dict] = {}
    for size in sizes:
        _log("catalog of %d products", size)
        started = time.perf_counter()
        catalog = ensure_catalog(size, args.seed, args.cache_dir, lucene=True, bm25s="bm25s" in backends)
        catalogs[size] = {"dir": str(catalog), "ready_s": time.perf_counter() - started,
                          **corpus_stats(catalog, 5_000)}
        factory = QueryFactory(catalog_dir(min(sizes), args.seed, args.cache_dir), pool=pool, seed=args.seed)
        size_cells = {}
        for length in lengths:
            cell = Cell(size, length)
            n_steps = args.steps if length == "short" else args.long_steps
            n_paired = max(n_steps, args.paired_steps if length == "short" else args.long_paired_steps)
            steps = factory.steps(range(1, n_steps + 1), length)
            # our path and its raw reference: more steps than the paper loop, the first ones shared
            paired = steps + factory.steps(range(n_steps + 1, n_paired + 1), length)
            warm = factory.steps(range(WARM_BASE, WARM_BASE + max(1, args.warmup_steps)), length)
            cell.shape = describe(steps[0]) | {"steps": len(steps), "paired_steps": len(paired)}
            _log(" %s queries: %s", length, cell.shape)
            rewards, rankings = run_cell_engines(cell, catalog, steps, warm, backends, args.k, args.threads,
                                                 baseline=not args.skip_baseline)
            if "lucene" in rankings and "bm25s" in rankings:
                values = [overlap_at_k(rankings["lucene"][q], rankings["bm25s"][q], args.k) for q in rankings["lucene"]]
                cell.overlap = {"mean": float(np.mean(values)), "min": float(np.min(values)),
                                "identical_share": float(np.mean([rankings["lucene"][q] == rankings["bm25s"][q]
                                                                  for q in rankings["lucene"]])),
                                "queries": len(values)}
                _log("  overlap@%d bm25s vs lucene: %s", args.k, cell.overlap)
            cell.agreement["_paper"] = rewards.get("paper")
            size_cells[length] = (cell, paired, warm)
            cells.append(cell)
        for backend in backends:
            label = f"ours/{backend}"
            # the raw engine our path is compared with, timed step by step next to it (run_ours)
            reference = open_engine(backend, index_path(catalog, backend), args.threads)
            if size == headline and args.memory and lengths:
                # service memory with 1 and with --memory-workers workers (each on a fresh service);
                # the recipe's worker count is the main run below
                first, steps, warm = size_cells[lengths[0]]
                first.memory[backend] = {}
                for n in sorted({1, args.memory_workers} - {args.workers}):
                    path = OurPath(workers, backend, catalog, args.k, args.threads, tag=f"{size}_w{n}",
                                   service_options=args.service_options)
                    out = run_ours(path, steps, warm, n, reference, args.k)  # a fresh service: all warm-up steps
                    path.close()
                    first.memory[backend][f"workers_{n}"] = _memory_entry(out)
                    first.paths[f"{label}@{n}w"] = _path_entry(out)
                    _log("  %s with %d worker(s): %.1f samples/s, peak RSS %.0f MB", label, n, out["qps"],
                         out["rss_peak"] / 1e6)
            path = OurPath(workers, backend, catalog, args.k, args.threads, tag=f"{size}_w{args.workers}",
                           service_options=args.service_options)
            for i, length in enumerate(lengths):
                cell, steps, warm = size_cells[length]
                # a fresh service (JVM) gets every warm-up step; later lengths on the same one, one step
                out = run_ours(path, steps, warm if i == 0 else warm[:1], args.workers, reference, args.k)
                cell.paths[label] = _path_entry(out)
                unique = sum(len(s.unique_queries()) for s in steps)
                raw = out["raw_service_seconds"]  # the service's own engine, next to our path
                cell.paths[f"raw/{backend}+positions"] = {
                    "seconds": raw, "qps": _qps(len(out["rewards"]), raw), "unique_queries": unique,
                    "queries_per_s": _qps(unique, raw), "where": "service process",
                    "driver_seconds": out["raw_seconds"], "driver_qps": _qps(len(out["rewards"]), out["raw_seconds"])}
                paper = cell.agreement.get("_paper")
                if paper is not None:  # the paper loop ran the first steps of ours
                    cell.agreement[label] = _agreement(out["rewards"][:len(paper)], paper)
                if backend in cell.memory:
                    cell.memory[backend][f"workers_{args.workers}"] = _memory_entry(out)
                _log("  %s %s: %.1f samples/s (raw target_positions next to it: %.1f), %s, peak RSS %.0f MB", label,
                     length, out["qps"], cell.paths[f"raw/{backend}+positions"]["qps"], out["service"],
                     out["rss_peak"] / 1e6)
            path.close()
            reference.close()
    for cell in cells:
        cell.agreement.pop("_paper", None)
    return {"catalogs": catalogs, "cells": [cell.__dict__ for cell in cells], "headline_size": headline}


# ------------------------------------------------------------------------------------------
# Report: table, targets, JSON, chart
# ------------------------------------------------------------------------------------------

PATH_NAMES = {
    "paper": "paper loop (pyserini search(q, k), 1 by 1)",
    "ours/lucene": "ours, Lucene (recipe options)",
    "ours/lucene-direct": "ours, Lucene (engine=direct)",
    "ours/bm25s": "ours, bm25s (numba)",
    "raw/lucene": "raw engine, Lucene, search()",
    "raw/lucene-direct": "raw engine, Lucene direct, search()",
    "raw/bm25s": "raw engine, bm25s, search()",
    "raw/lucene+positions": "raw engine, Lucene, target_positions()",
    "raw/lucene-direct+positions": "raw engine, Lucene direct, target_positions()",
    "raw/bm25s+positions": "raw engine, bm25s, target_positions()",
}


def _path_order(label: str) -> tuple[int, str]:
    order = ["paper", "ours/lucene", "ours/lucene-direct", "ours/bm25s", "raw/lucene", "raw/lucene+positions",
             "raw/lucene-direct", "raw/lucene-direct+positions", "raw/bm25s", "raw/bm25s+positions"]
    base = label.split("@")[0]
    return (order.index(base) if base in order else len(order), label)


def engine_reference_seconds(paths: dict, backend: str, ours: Optional[dict]) -> Optional[float]:
    """Seconds of the raw engine call our path ``ours`` makes for ``backend``: timed step by step
    next to it on the service's own engine (``raw_service_seconds``); in older results, on the
    same index opened in the driver (``raw_seconds``), else the separate target-positions run,
    else the full batch search."""
    for prefix in _REFERENCES:
        if ours and ours.get(f"{prefix}_seconds"):
            return ours[f"{prefix}_seconds"]
    return (paths.get(f"raw/{backend}+positions") or paths.get(f"raw/{backend}", {})).get("seconds")


# the raw references an ``ours`` entry may hold, preferred first: the service's own engine, then
# (older results) the same index opened in the driver
_REFERENCES = ("raw_service", "raw")


def reference_step_seconds(ours: Optional[dict]) -> list[float]:
    """Per-step seconds of the reference :func:`engine_reference_seconds` uses (empty if none)."""
    for prefix in _REFERENCES:
        if (ours or {}).get(f"{prefix}_step_seconds"):
            return ours[f"{prefix}_step_seconds"]
    return []


def driver_overhead(ours: dict) -> Optional[float]:
    """Extra wall time of ``ours`` over the index opened in the driver, when the service's own
    engine is the reference (shown beside the target, not the target)."""
    if ours.get("raw_service_seconds") and ours.get("raw_seconds"):
        return ours["seconds"] / ours["raw_seconds"] - 1.0
    return None


def _workers_note(entry: dict) -> str:
    n = entry.get("workers")
    return "" if n is None else f" [{n} worker{'s' if n != 1 else ''}]"


def table_rows(results: dict) -> list[dict]:
    rows = []
    for cell in results["cells"]:
        paper = cell["paths"].get("paper", {}).get("qps")
        for label in sorted(cell["paths"], key=_path_order):
            entry = cell["paths"][label]
            base = label.split("@")[0]
            raw = engine_reference_seconds(cell["paths"], base.split("/", 1)[1], entry) if base.startswith("ours/") else None
            rows.append({
                "size": cell["size"], "length": cell["length"], "path": label,
                "name": PATH_NAMES.get(base, base) + _workers_note(entry),
                "qps": entry["qps"], "vs_paper": entry["qps"] / paper if paper else None,
                "over_raw": (entry["seconds"] / raw - 1.0) if raw else None,
                "over_driver": driver_overhead(entry),
                "rss_peak_mb": entry["rss_peak"] / 1e6 if "rss_peak" in entry else None,
                "engine_share": (entry["service"]["engine_seconds"] / entry["seconds"]
                                 if entry.get("service", {}).get("engine_seconds") and entry["seconds"] else None),
            })
    return rows


def format_table(results: dict) -> str:
    lines = [f"{'catalog':>9} {'queries':7} {'path':46} {'samples/s':>10} {'x paper':>8} {'vs raw':>8} {'vs drv':>7} "
             f"{'in eng.':>8} {'RSS MB':>8}"]
    previous = None
    for row in table_rows(results):
        key = (row["size"], row["length"])
        if previous is not None and key != previous:
            lines.append("")
        previous = key
        ratio = f"{row['vs_paper']:.2f}x" if row["vs_paper"] else "-"
        over = f"{100 * row['over_raw']:+.0f}%" if row["over_raw"] is not None else "-"
        driver = f"{100 * row['over_driver']:+.0f}%" if row["over_driver"] is not None else "-"
        rss = f"{row['rss_peak_mb']:.0f}" if row["rss_peak_mb"] else "-"
        share = f"{100 * row['engine_share']:.0f}%" if row["engine_share"] else "-"
        lines.append(f"{row['size']:>9,} {row['length']:7} {row['name']:46} {row['qps']:>10.1f} {ratio:>8} {over:>8} "
                     f"{driver:>7} {share:>8} {rss:>8}")
    return "\n".join(lines)


def evaluate_targets(results: dict) -> list[dict]:
    """The issue's targets, on the largest catalog with short queries (overlap: every cell)."""
    head = [c for c in results["cells"] if c["size"] == results["headline_size"]]
    cell = next((c for c in head if c["length"] == "short"), head[0] if head else None)
    checks = []
    if cell is None:
        return checks
    paths = cell["paths"]
    paper = paths.get("paper", {}).get("qps")

    def add(name: str, value: Optional[float], goal: str, ok: Optional[bool]) -> None:
        checks.append({"target": name, "value": value, "goal": goal, "met": ok})

    for backend, goal in (("bm25s", TARGETS["bm25s_vs_paper"]), ("lucene", TARGETS["lucene_vs_paper"])):
        ours = paths.get(f"ours/{backend}", {}).get("qps")
        ratio = ours / paper if ours and paper else None
        add(f"ours/{backend} vs paper loop", ratio, f">= {goal:g}x", None if ratio is None else ratio >= goal)
    for backend in ("lucene", "bm25s"):
        ours = paths.get(f"ours/{backend}")
        raw = engine_reference_seconds(paths, backend, ours)
        over = ours["seconds"] / raw - 1.0 if ours and raw else None
        add(f"ours/{backend} plumbing over raw engine", over, f"<= {TARGETS['plumbing_max']:.0%}",
            None if over is None else over <= TARGETS["plumbing_max"])
        pairs = list(zip((ours or {}).get("step_seconds", []), reference_step_seconds(ours)))
        if pairs:  # how much single steps scatter around the total's ratio (a shared VM's speed drifts)
            per_step = sorted(o / r - 1.0 for o, r in pairs)
            checks[-1]["per_step"] = {"median": float(np.median(per_step)), "min": per_step[0], "max": per_step[-1]}
        if ours and driver_overhead(ours) is not None:
            checks[-1]["over_driver_engine"] = driver_overhead(ours)
    overlaps = [c["overlap"]["mean"] for c in results["cells"] if c.get("overlap")]
    head_overlap = cell.get("overlap", {}).get("mean")
    add("overlap@k bm25s vs lucene (headline cell)", head_overlap, f">= {TARGETS['overlap_min']}",
        None if head_overlap is None else head_overlap >= TARGETS["overlap_min"])
    if overlaps:
        add("overlap@k bm25s vs lucene (worst cell)", min(overlaps), f">= {TARGETS['overlap_min']}",
            min(overlaps) >= TARGETS["overlap_min"])
    for backend, mem in cell.get("memory", {}).items():
        most = max(mem, key=lambda s: int(s.split("_")[1]), default=None)
        if "workers_1" in mem and most != "workers_1":
            growth = mem[most]["rss_peak"] / mem["workers_1"]["rss_peak"] - 1.0
            add(f"service RSS {backend}: {most.replace('_', ' ')} vs 1 worker", growth,
                f"<= +{TARGETS['memory_max']:.0%}", growth <= TARGETS["memory_max"])
    return checks


def format_targets(checks: list[dict]) -> str:
    out = []
    for c in checks:
        value = c["value"]
        shown = "-" if value is None else (f"{value:.2f}x" if "vs paper" in c["target"] else
                                           f"{value:+.1%}" if ("plumbing" in c["target"] or "RSS" in c["target"])
                                           else f"{value:.4f}")
        verdict = {True: "MET", False: "NOT MET", None: "not measured"}[c["met"]]
        spread = c.get("per_step")
        steps = (f"  [single steps: median {spread['median']:+.0%}, {spread['min']:+.0%} to {spread['max']:+.0%}]"
                 if spread else "")
        if "over_driver_engine" in c:
            steps += f"  [vs the index opened in the driver: {c['over_driver_engine']:+.1%}]"
        out.append(f"  {c['target']:48} {shown:>9}  (goal {c['goal']})  {verdict}{steps}")
    return "\n".join(out)


SHORT_LABELS = {"paper": "paper\nloop", "ours/lucene": "ours\nLucene", "ours/lucene-direct": "ours\nLucene dir.",
                "ours/bm25s": "ours\nbm25s", "raw/lucene": "raw Lucene\nsearch", "raw/lucene+positions": "raw Lucene\npositions",
                "raw/lucene-direct": "raw Lucene\ndirect", "raw/lucene-direct+positions": "raw L. direct\npositions",
                "raw/bm25s": "raw bm25s\nsearch", "raw/bm25s+positions": "raw bm25s\npositions"}


def draw_chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table_rows(results)
    head = results["headline_size"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=80, gridspec_kw={"width_ratios": [1.25, 1]})
    colors = {"paper": "#777777", "ours/lucene": "#1f77b4", "ours/lucene-direct": "#17becf", "ours/bm25s": "#d62728",
              "raw/lucene": "#6baed6", "raw/lucene-direct": "#9edae5", "raw/bm25s": "#fc9272",
              "raw/lucene+positions": "#9ecae1", "raw/lucene-direct+positions": "#c7e9f0", "raw/bm25s+positions": "#fcbba1"}
    head_rows = [r for r in rows if r["size"] == head and "@" not in r["path"]]
    lengths = [l for l in LENGTHS if any(r["length"] == l for r in head_rows)]
    labels = sorted({r["path"] for r in head_rows}, key=_path_order)
    width = 0.8 / max(1, len(lengths))
    for j, length in enumerate(lengths):
        by = {r["path"]: r for r in head_rows if r["length"] == length}
        xs = np.arange(len(labels)) + j * width
        vals = [by[l]["qps"] if l in by else 0 for l in labels]
        bars = ax1.bar(xs, vals, width, color=[colors.get(l, "#333") for l in labels],
                       hatch="" if length == "short" else "///", edgecolor="white", label=f"{length} queries")
        for bar, l in zip(bars, labels):
            if l in by and by[l]["vs_paper"]:
                ax1.annotate(f"{by[l]['vs_paper']:.1f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                             ha="center", va="bottom", fontsize=7)
    ax1.set_yscale("log")
    ax1.set_xticks(np.arange(len(labels)) + width * (len(lengths) - 1) / 2)
    ax1.set_xticklabels([SHORT_LABELS.get(l, l) for l in labels], fontsize=7)
    ax1.set_ylabel("reward samples / s (log)")
    ax1.set_title(f"{head:,} products, k=1000; labels: x the paper's loop", fontsize=9)
    ax1.legend(fontsize=7, loc="upper left")
    for label in [l for l in sorted({r["path"] for r in rows if "@" not in r["path"]}, key=_path_order)
                  if l == "paper" or l.startswith("ours/")]:
        for length, style in (("short", "-o"), ("long", "--s")):
            pts = sorted((r["size"], r["qps"]) for r in rows if r["path"] == label and r["length"] == length)
            if pts:
                ax2.plot([p[0] for p in pts], [p[1] for p in pts], style, color=colors.get(label, "#333"),
                         label=f"{label} ({length})", markersize=4)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("catalog size (products)")
    ax2.set_ylabel("reward samples / s (log)")
    ax2.set_title("scaling: solid = short (3-8 words), dashed = long (~180)", fontsize=9)
    ax2.legend(fontsize=6.5, ncol=2, loc="lower left")
    machine = results.get("machine", {})
    note = (f"{machine.get('cpus', '?')} cores, load avg {machine.get('loadavg_start', ['?'])[0]:.1f} at start; "
            f"verl_rec: {machine.get('verl_rec_label', machine.get('verl_rec', '?'))}") if machine else ""
    if note:
        fig.text(0.01, 0.01, note, fontsize=6.5, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def machine_info() -> dict[str, Any]:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    import verl_rec

    info["verl_rec"] = str(Path(verl_rec.__file__).resolve().parent)
    try:
        import subprocess

        root = Path(verl_rec.__file__).resolve().parents[1]
        info["verl_rec_git"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                              capture_output=True, text=True, timeout=10).stdout.strip()
        info["verl_rec_dirty"] = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "verl_rec"],
                                                     capture_output=True, text=True, timeout=10).stdout.strip())
    except Exception:  # informative only
        pass
    info["verl_rec_label"] = f"git {info.get('verl_rec_git') or '?'}{' (modified)' if info.get('verl_rec_dirty') else ''}"
    from importlib.metadata import version

    for module in ("pyserini", "bm25s", "numba", "ray", "verl"):
        try:
            info[module] = version(module)
        except Exception:  # version is informative only
            pass
    return info


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_200_000, help="largest (headline) catalog size")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="comma-separated catalog sizes (default 100000,400000 and --products, up to --products)")
    parser.add_argument("--backends", type=lambda s: [x for x in s.split(",") if x], default=list(DEFAULT_BACKENDS),
                        help=f"comma-separated, from {BACKENDS} (lucene = direct engine)")
    parser.add_argument("--lengths", type=lambda s: [x for x in s.split(",") if x], default=list(LENGTHS))
    parser.add_argument("--steps", type=int, default=6, help="timed GRPO steps (640 samples each) per cell")
    parser.add_argument("--long-steps", type=int, default=2,
                        help="timed steps for long (~180-word) queries (slow: the paper loop needs ~70 s per step)")
    parser.add_argument("--paired-steps", type=int, default=24,
                        help="timed steps of our path, each next to its raw engine call (short queries; the first "
                             "--steps are the paper loop's): single steps scatter by +-50%% on a shared VM, so the "
                             "plumbing ratio needs many pairs")
    parser.add_argument("--long-paired-steps", type=int, default=4, help="the same for long queries")
    parser.add_argument("--workers", type=int, default=None,
                        help="reward workers of our path (default: the recipes' reward.num_workers)")
    parser.add_argument("--memory-workers", type=int, default=8,
                        help="service memory is compared between 1 and this many workers (veRL's default 8)")
    parser.add_argument("--warmup-steps", type=int, default=40,
                        help="untimed steps run first on every fresh service (a fresh JVM's Lucene at 1.2M products: "
                             "1161 ms per step after 6 warm-up steps, 911 ms after 48)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="engine threads")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker-impl", choices=("manager", "inline"), default="manager",
                        help="manager: veRL + RecR1RewardManager in each worker (default); inline: the same calls "
                             "without importing veRL (quick runs)")
    parser.add_argument("--service-option", dest="service_options", action="append", default=[], metavar="KEY=VALUE",
                        help="a RetrievalService setting over its default for our path, e.g. batch_window_ms=2 "
                             "(repeatable; the value is read as JSON when it parses)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the 1-worker memory run")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_ROOT)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = recipe_reward_workers()
    if args.long_steps is None:
        args.long_steps = args.steps
    if args.sizes is None:
        args.sizes = sorted({s for s in DEFAULT_SIZES if s <= args.products} | {args.products})
    for b in args.backends:
        if b not in BACKENDS:
            parser.error(f"unknown backend {b!r}; choose from {BACKENDS}")
    for l in args.lengths:
        if l not in LENGTHS:
            parser.error(f"unknown query length {l!r}; choose from {LENGTHS}")
    args.service_options = dict(_service_option(parser, item) for item in args.service_options)
    return args


def _service_option(parser: argparse.ArgumentParser, item: str) -> tuple[str, Any]:
    from verl_rec.retrieval.service.config import ServiceConfig

    tunable = [k for k in ServiceConfig.__dataclass_fields__
               if k not in ("backend", "index_path", "backend_options", "name", "namespace")]
    key, sep, value = item.partition("=")
    if not sep or key not in tunable:
        parser.error(f"--service-option {item!r}: expected KEY=VALUE with KEY one of {', '.join(tunable)}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def replot(json_path: Path) -> None:
    """Print the table and targets of a results JSON again and redraw its chart next to it."""
    results = json.loads(Path(json_path).read_text())
    results["targets"] = evaluate_targets(results)
    print(format_table(results) + "\n\n" + format_targets(results["targets"]))
    out = Path(json_path).parent
    (out / "reward_throughput.txt").write_text(format_table(results) + "\n\n" + format_targets(results["targets"]) + "\n")
    draw_chart(results, out / "reward_throughput.png")


def main(argv: Optional[Sequence[str]] = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--replot"]:
        replot(Path(argv[1]))
        return {}
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("verl_rec", "bench.catalog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    info = machine_info()
    _log("bench: sizes %s, backends %s, lengths %s, %d steps x 640 samples, %d workers, k=%d, load %s",
         args.sizes, args.backends, args.lengths, args.steps, args.workers, args.k, info.get("loadavg_start"))
    try:
        results = run_benchmark(args)
    finally:
        if "ray" in sys.modules:
            import ray

            if ray.is_initialized():
                ray.shutdown()
    try:
        info["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    results.update({"machine": info, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "targets": evaluate_targets(results), "wall_s": time.perf_counter() - started})
    table = format_table(results)
    print("\n" + table)
    print("\nTargets (largest catalog, short queries, k=%d):\n%s" % (args.k, format_targets(results["targets"])))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reward_throughput.json").write_text(json.dumps(results, indent=2, default=float))
    (args.out / "reward_throughput.txt").write_text(table + "\n\n" + format_targets(results["targets"]) + "\n")
    draw_chart(results, args.out / "reward_throughput.png")
    print(f"\nwrote {args.out / 'reward_throughput.json'}, {args.out / 'reward_throughput.png'} "
          f"(load average {info.get('loadavg_start')} -> {info.get('loadavg_end')}, {results['wall_s']:.0f}s)")
    return results


if __name__ == "__main__":
    main()
