"""The search tool's latency under a GRPO step's concurrency, next to the single-turn reward path.

``python -m bench.agent_latency --products 100000 --out bench/results/``

One node's retrieval service (a Ray actor, the recipes' settings: ``batch_window_ms`` 10,
dedupe, cache), serving two kinds of caller as a training step does:

* ``tool``: the agent's ``search(query)`` calls. ``--agent-workers`` Ray actors (veRL's agent-loop
  workers; 8 by default, veRL's ``rollout.agent.num_workers``) each hold the search tool's
  client (:class:`~verl_rec.retrieval.service.client.RetrievalClient`) and make one call per
  episode, all at once: a step of ``--episodes`` (32 prompts x 12 rollouts = 384) episodes
  whose turns reach the tool together (the peak; in training, decoding spreads the calls
  out). Each call is the tool's request: the top ``--top-k`` ids with their titles
  (``hits_many``). Latency = from the call to its answer, per call, in the worker.
* ``reward``: the single-turn reward of the same step: ``--reward-workers`` (the recipes'
  ``reward.num_workers``, 2) reward workers score every episode's final answer with the reward
  manager's scorer (:class:`~verl_rec.reward.scorer.ServiceScorer`: format check, the target
  positions at depth ``--k`` 1000, the Rec-R1 score). Latency per sample, in the worker.
* ``tool, alone``: one call at a time (no concurrency): the floor of a call's latency.

Queries are the benchmark's GRPO-shaped short queries (:mod:`bench.queries`), each step new
ones (no cache hits across steps); ``--warmup-steps`` untimed steps run first. Writes
``agent_latency.json`` (every latency, the service counters, the machine) and
``agent_latency.txt`` (the table) to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.catalog import ensure_catalog
from bench.paths import REPO_ROOT, backend_options, index_path, recipe_reward_kwargs, recipe_reward_workers, start_ray
from bench.queries import QueryFactory, Step

logger = logging.getLogger("bench")
WARM_BASE = 2_000  # warm-up steps are steps 2000, 2001, ...: other queries than the timed ones


class Caller:
    """A stand-in for one veRL worker process: an agent-loop worker (the tool's client) or a
    reward worker (the reward manager's scorer), firing a step's calls concurrently."""

    def __init__(self, service: dict, reward_kwargs: dict) -> None:
        from verl_rec.retrieval.service.client import RetrievalClient
        from verl_rec.retrieval.service.config import ServiceConfig
        from verl_rec.reward.scorer import ServiceScorer

        self.client = RetrievalClient(ServiceConfig.from_mapping(service))
        self.scorer = ServiceScorer.from_reward_kwargs(reward_kwargs)

    def ready(self) -> int:
        return os.getpid()

    @staticmethod
    async def _timed(make) -> tuple[float, Any]:
        started = time.perf_counter()
        answer = await make()
        return time.perf_counter() - started, answer

    async def tool_calls(self, queries: list[str], k: int) -> tuple[list[float], list[int]]:
        """One search per query, all at once; per call its latency and the number of hits."""
        timed = await asyncio.gather(*(self._timed(lambda q=q: self.client.hits(q, k)) for q in queries))
        return [t for t, _ in timed], [len(h) for _, h in timed]

    async def tool_calls_alone(self, queries: list[str], k: int) -> list[float]:
        return [(await self._timed(lambda q=q: self.client.hits(q, k)))[0] for q in queries]

    async def reward_calls(self, texts: list[str], targets: list[list[str]]) -> tuple[list[float], list[float]]:
        """The reward of each final answer, all at once; per sample its latency and score."""
        timed = await asyncio.gather(*(self._timed(lambda t=t, g=g: self.scorer.score_text(t, g))
                                       for t, g in zip(texts, targets)))
        return [t for t, _ in timed], [r.score for _, r in timed]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean / max in milliseconds."""
    a = np.asarray(values, dtype=np.float64) * 1000.0
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "max_ms": float(a.max())}


def episodes_of(step: Step, episodes: int) -> list[tuple[str, str, list[str]]]:
    """``episodes`` (query, final answer text, targets) from a benchmark step, in order."""
    samples = [s for s in step.samples if s.query is not None]
    picked = [samples[i % len(samples)] for i in range(episodes)]
    return [(s.query, s.text, list(s.targets)) for s in picked]


def split(items: list, parts: int) -> list[list]:
    """Contiguous chunks, as veRL splits a batch over its workers."""
    return [list(chunk) for chunk in np.array_split(np.array(items, dtype=object), parts) if len(chunk)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from verl_rec.retrieval.service.client import get_or_start_service
    from verl_rec.retrieval.service.config import ServiceConfig

    catalog = ensure_catalog(args.products, seed=0, lucene=args.backend != "bm25s", bm25s=args.backend == "bm25s")
    kind, options = backend_options(args.backend, args.threads)
    recipe = recipe_reward_kwargs()
    service = {**{k: v for k, v in (recipe.get("retrieval") or {}).items() if k in ("batch_window_ms", "max_batch_size",
                                                                                 "cache_size")},
               "backend": kind, "index_path": str(index_path(catalog, args.backend)), "backend_options": options,
               "doc_text_path": str(catalog / "corpus.jsonl"), "name": "bench_agent_latency",
               "namespace": "verl_rec_bench"}
    reward_kwargs = {"metric": f"ndcg@{args.k}", "retrieval": service}
    factory = QueryFactory(catalog, pool=min(args.products, 100_000), seed=0)

    start_ray(0)
    try:
        started = time.perf_counter()
        handle = get_or_start_service(ServiceConfig.from_mapping(service))
        ray.get(handle.info.remote())
        startup_s = time.perf_counter() - started  # the engine open, warmed up, titles loaded
        caller = ray.remote(num_cpus=0)(Caller)
        agents = [caller.options(max_concurrency=10_000).remote(service, reward_kwargs) for _ in range(args.agent_workers)]
        rewards = [caller.options(max_concurrency=10_000).remote(service, reward_kwargs) for _ in range(args.reward_workers)]
        ray.get([w.ready.remote() for w in agents + rewards])

        def tool_step(step: Step) -> tuple[list[float], list[int]]:
            queries = [q for q, _, _ in episodes_of(step, args.episodes)]
            outs = ray.get([w.tool_calls.remote(chunk, args.top_k) for w, chunk in zip(agents, split(queries, len(agents)))])
            return [t for lat, _ in outs for t in lat], [n for _, hits in outs for n in hits]

        def reward_step(step: Step) -> tuple[list[float], list[float]]:
            episodes = episodes_of(step, args.episodes)
            texts, targets = [t for _, t, _ in episodes], [g for _, _, g in episodes]
            outs = ray.get([w.reward_calls.remote(t, g) for w, t, g in
                            zip(rewards, split(texts, len(rewards)), split(targets, len(rewards)))])
            return [t for lat, _ in outs for t in lat], [s for _, scores in outs for s in scores]

        for i in range(args.warmup_steps):
            warm = factory.step(WARM_BASE + i, "short")
            tool_step(warm)
            reward_step(warm)
        before = ray.get(handle.info.remote())
        tool, reward, hits, scores = [], [], [], []
        for i in range(1, args.steps + 1):
            step = factory.step(i, "short")
            t, h = tool_step(step)
            r, s = reward_step(step)
            tool, hits, reward, scores = tool + t, hits + h, reward + r, scores + s
            logger.info("step %d: tool p50 %.1f ms, reward p50 %.1f ms", i, 1000 * np.median(t), 1000 * np.median(r))
        after = ray.get(handle.info.remote())
        alone_queries = [q for q, _, _ in episodes_of(factory.step(WARM_BASE + 999, "short"), args.alone_calls)]
        alone = ray.get(agents[0].tool_calls_alone.remote(alone_queries, args.top_k))
        ray.kill(handle, no_restart=True)
    finally:
        ray.shutdown()

    return {
        "settings": {**vars(args), "service": {k: v for k, v in service.items() if k != "backend_options"},
                     "backend_options": options},
        "tool": percentiles(tool), "tool_alone": percentiles(alone), "reward": percentiles(reward),
        "hits_per_call": percentiles([h / 1000.0 for h in hits]) | {"min": min(hits) if hits else 0},
        "reward_scores": {"n": len(scores), "mean": float(np.mean(scores)) if scores else 0.0},
        "service": {"startup_s": startup_s, **{k: after[k] - before[k] for k in
                    ("calls", "requests", "batches", "engine_queries", "cache_hits", "deduplicated", "engine_seconds")}},
        "latencies_ms": {name: [round(1000 * t, 2) for t in values] for name, values in
                         (("tool", tool), ("reward", reward), ("tool_alone", alone))},
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                            "load_avg": os.getloadavg()}
    try:
        info["git"] = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True, check=True).stdout.strip()
    except Exception:
        info["git"] = None
    return info


def table(results: dict[str, Any]) -> str:
    s = results["settings"]
    rows = [(f"tool call (search, top {s['top_k']} + titles)", results["tool"]),
            ("tool call, one at a time", results["tool_alone"]),
            (f"single-turn reward (positions @{s['k']})", results["reward"])]
    svc = results["service"]
    lines = [f"{s['products']:,} products, {s['backend']}, {s['episodes']} concurrent episodes per step over "
             f"{s['agent_workers']} agent-loop workers / {s['reward_workers']} reward workers, {s['steps']} steps "
             f"(after {s['warmup_steps']} warm-up), {results['machine']['cpus']} CPUs, load {results['machine']['load_avg'][0]:.1f}",
             "", "| path | calls | p50 ms | p95 ms | mean ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for name, p in rows:
        lines.append(f"| {name} | {p['n']} | {p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['mean_ms']:.1f} | {p['max_ms']:.1f} |")
    lines += ["", f"service over the timed steps: {svc['requests']} requests in {svc['batches']} engine batches "
              f"({svc['engine_queries']} engine queries, {svc['deduplicated']} deduplicated, {svc['cache_hits']} cache hits), "
              f"{svc['engine_seconds']:.2f} s inside the engine"]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000, help="synthetic catalog size (bench/catalog.py)")
    parser.add_argument("--backend", choices=("bm25s", "lucene"), default="lucene", help="the recipes' engine: lucene")
    parser.add_argument("--threads", type=int, default=2, help="bm25s numba threads")
    parser.add_argument("--episodes", type=int, default=384, help="episodes per step (prompts x rollouts: 32 x 12)")
    parser.add_argument("--agent-workers", type=int, default=8, help="agent-loop worker processes (veRL's default 8)")
    parser.add_argument("--reward-workers", type=int, default=recipe_reward_workers(), help="reward worker processes")
    parser.add_argument("--top-k", type=int, default=10, help="results per search (the tool config's top_k)")
    parser.add_argument("--k", type=int, default=1000, help="the reward's depth (ndcg@1000)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--alone-calls", type=int, default=50, help="calls timed one at a time")
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "agent_latency.json").write_text(json.dumps(results, indent=1) + "\n")
    text = table(results)
    (out / "agent_latency.txt").write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
