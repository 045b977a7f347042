"""The reward-throughput benchmark: the paper's reward loop against our reward path, in one run.

``python -m bench.run --products 1200000 --out bench/results/``

On the same synthetic catalog (:mod:`bench.catalog`) and the same GRPO-shaped model outputs
(:mod:`bench.queries`), at k=1000, it measures in one process tree:

* ``paper loop``: the Rec-R1 released reward (``docs/fidelity.md``, one sample at a time):
  per sample, sequentially, a format check, ONE single-query pyserini
  ``LuceneSearcher.search(q, k=1000)``, then NDCG@1000 from the hit list;
* ``ours/<backend>``: our reward path end to end, driven as veRL 0.9 drives it. ``--workers``
  (default: the recipes' ``reward.num_workers``) reward-worker Ray actors (veRL's
  ``RewardLoopWorker``: one asyncio task per sample, all concurrent) each hold a real
  :class:`~verl_rec.integration.reward_manager.RecR1RewardManager` and call its scorer
  (:meth:`~verl_rec.reward.scorer.ServiceScorer.score_text`: ``prepare`` ->
  ``RetrievalClient.target_positions`` on the node's named Ray actor
  :class:`~verl_rec.retrieval.service.actor.RetrievalService`, with micro-batching, dedupe and cache
  -> ``finish``), exactly what the manager runs after decoding. The step's samples are split into contiguous chunks, one per worker,
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

The measured paths are in :mod:`bench.paths`; the table, targets and chart (and what each
column means) in :mod:`bench.report`.

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
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.catalog import CACHE_ROOT, catalog_dir, corpus_stats, ensure_catalog
from bench.paths import (
    BACKENDS,
    REPO_ROOT,
    OurPath,
    PaperLoop,
    RssSampler,
    index_path,
    open_engine,
    overlap_at_k,
    raw_positions_run,
    raw_run,
    recipe_reward_workers,
    start_ray,
)
from bench.queries import LENGTHS, QueryFactory, Step, describe
from bench.report import evaluate_targets, format_table, format_targets, replot, write_report

logger = logging.getLogger("bench")

WARM_BASE = 1_000  # warm-up steps are steps 1000, 1001, ...: other queries than the timed steps 1, 2, ...
DEFAULT_SIZES = (100_000, 400_000, 1_200_000)
DEFAULT_BACKENDS = ("lucene", "bm25s")


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
        logger.info("  paper loop: %.1f samples/s (%.1fs)", cell.paths["paper"]["qps"], seconds)
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
        logger.info("  raw %s search: %.1f samples/s (%d distinct queries in %.2fs)", backend,
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
        logger.info("catalog of %d products", size)
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
            logger.info(" %s queries: %s", length, cell.shape)
            rewards, rankings = run_cell_engines(cell, catalog, steps, warm, backends, args.k, args.threads,
                                                 baseline=not args.skip_baseline)
            if "lucene" in rankings and "bm25s" in rankings:
                values = [overlap_at_k(rankings["lucene"][q], rankings["bm25s"][q], args.k) for q in rankings["lucene"]]
                cell.overlap = {"mean": float(np.mean(values)), "min": float(np.min(values)),
                                "identical_share": float(np.mean([rankings["lucene"][q] == rankings["bm25s"][q]
                                                                  for q in rankings["lucene"]])),
                                "queries": len(values)}
                logger.info("  overlap@%d bm25s vs lucene: %s", args.k, cell.overlap)
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
                    logger.info("  %s with %d worker(s): %.1f samples/s, peak RSS %.0f MB", label, n, out["qps"],
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
                logger.info("  %s %s: %.1f samples/s (raw target_positions next to it: %.1f), %s, peak RSS %.0f MB", label,
                     length, out["qps"], cell.paths[f"raw/{backend}+positions"]["qps"], out["service"],
                     out["rss_peak"] / 1e6)
            path.close()
            reference.close()
    for cell in cells:
        cell.agreement.pop("_paper", None)
    return {"catalogs": catalogs, "cells": [cell.__dict__ for cell in cells], "headline_size": headline}


# ------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
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
    for length in args.lengths:
        if length not in LENGTHS:
            parser.error(f"unknown query length {length!r}; choose from {LENGTHS}")
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


def main(argv: Sequence[str] | None = None) -> dict:
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
    logger.info("bench: sizes %s, backends %s, lengths %s, %d steps x 640 samples, %d workers, k=%d, load %s",
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
    print(f"\nTargets (largest catalog, short queries, k={args.k}):\n{format_targets(results['targets'])}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reward_throughput.json").write_text(json.dumps(results, indent=2, default=float))
    write_report(results, args.out)
    print(f"\nwrote {args.out / 'reward_throughput.json'}, {args.out / 'reward_throughput.png'} "
          f"(load average {info.get('loadavg_start')} -> {info.get('loadavg_end')}, {results['wall_s']:.0f}s)")
    return results


if __name__ == "__main__":
    main()
