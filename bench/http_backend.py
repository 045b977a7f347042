"""``backend: http`` vs in-process Lucene on the same index, through the retrieval service.

``python -m bench.http_backend --out bench/results/http_backend.json``

The Vaswani collection is indexed once with our Lucene builder; Anserini's REST server
(:mod:`verl_rec.devkit.anserini_rest`) serves that index over HTTP. The same ``--queries``
distinct queries (3-8 words drawn from the Vaswani topics, seeded) go, in steps of ``--step``
concurrent requests, through a :class:`~verl_rec.retrieval.service.actor.RetrievalService` (in
this process: batching, dedupe and cache as in training) over each engine: the HTTP backend,
and in-process Lucene at the server's BM25 (k1 0.9, b 0.4). Each request asks the positions of
its targets (Vaswani qrels documents) in the top ``-k`` (each depth given, in turn), as a reward does. Reported: queries/s,
per-step latency (median, p90), the HTTP/in-process ratios, whether every answer was equal, and
the REST server's RSS. The engines alternate step by step, so both see the same machine state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
VASWANI = REPO_ROOT.parent / "shared" / "data" / "vaswani"


def make_queries(topics: dict[str, str], qrels: dict[str, dict[str, float]], n: int, seed: int) -> list[tuple[str, list[str]]]:
    """``n`` distinct queries of 3-8 words, each from one topic's words, with that topic's relevant docs as targets."""
    rng = np.random.default_rng(seed)
    qids = [q for q in topics if qrels.get(q)]
    seen: dict[str, list[str]] = {}
    while len(seen) < n:
        qid = qids[rng.integers(len(qids))]
        words = topics[qid].lower().split()
        query = " ".join(rng.choice(words, size=min(len(words), int(rng.integers(3, 9))), replace=False))
        seen.setdefault(query, sorted(qrels[qid]))
    return list(seen.items())


async def run_step(service, requests: list[tuple[str, list[str]]], k: int) -> tuple[float, list]:
    started = time.perf_counter()
    answers = await asyncio.gather(*(service.target_positions(q, k, t) for q, t in requests), return_exceptions=True)
    return time.perf_counter() - started, answers


def measure_depth(services: dict, requests: list[tuple[str, list[str]]], steps: list[list[tuple[str, list[str]]]],
                  k: int) -> dict:
    """Every step through each service in turn (warmed first on the last step's queries), at depth ``k``."""
    seconds: dict[str, list[float]] = {name: [] for name in services}
    answers: dict[str, list] = {name: [] for name in services}

    async def measure() -> None:
        for service in services.values():
            await run_step(service, steps[-1], k)
        for step in steps:
            for name, service in services.items():
                took, got = await run_step(service, step, k)
                seconds[name].append(took)
                answers[name] += got

    before = {name: (s.stats.engine_seconds, s.stats.refused_queries) for name, s in services.items()}
    asyncio.run(measure())
    engines = {}
    for name, times in seconds.items():
        total = sum(times)
        engines[name] = {"queries_per_s": len(requests) / total, "total_s": total,
                         "step_median_s": statistics.median(times), "step_p90_s": float(np.percentile(times, 90)),
                         "errors": sum(isinstance(a, BaseException) for a in answers[name]),
                         "engine_seconds": services[name].stats.engine_seconds - before[name][0],
                         "refused_queries": services[name].stats.refused_queries - before[name][1]}
    http, lucene = engines["http"], engines["lucene"]
    return {"k": k, "engines": engines,
            "ratio_http_over_lucene": {"step_median_s": http["step_median_s"] / lucene["step_median_s"],
                                       "queries_per_s": http["queries_per_s"] / lucene["queries_per_s"]},
            "answers_equal": sum(a == b for a, b in zip(answers["http"], answers["lucene"])),
            "answers_compared": len(requests)}


def rss_bytes(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--step", type=int, default=128, help="concurrent requests per step")
    parser.add_argument("-k", type=int, nargs="+", default=[1000, 100], help="reward depths, measured one after another")
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="in-process Lucene search threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "http_backend.json")
    args = parser.parse_args(argv)

    from verl_rec.devkit.anserini_rest import REST_BM25, http_options, rest_server
    from verl_rec.retrieval.lucene.build import build_lucene_index
    from verl_rec.retrieval.service.actor import RetrievalService
    from verl_rec.retrieval.service.config import ServiceConfig
    from verl_rec.retrieval.trec import read_qrels, read_trec_topics, trec_docs_to_jsonl

    work = Path(tempfile.mkdtemp(prefix="verl_rec_http_bench_"))
    corpus, index = work / "corpus.jsonl", work / "index_lucene"
    trec_docs_to_jsonl(VASWANI / "corpus" / "doc-text.trec", corpus)
    build_lucene_index(corpus, index, threads=2, heap="1g", progress=False)
    requests = make_queries(read_trec_topics(VASWANI / "query-text.trec"), read_qrels(VASWANI / "qrels"),
                            args.queries, args.seed)
    steps = [requests[i:i + args.step] for i in range(0, len(requests), args.step)]

    with rest_server(work / "rest_server.log", index, heap="1g") as server:
        configs = {
            "http": ServiceConfig(backend="http", index_path=server.url, cache_size=0,
                                  backend_options=http_options(index, max_concurrency=args.max_concurrency)),
            "lucene": ServiceConfig(backend="lucene", index_path=str(index), cache_size=0,
                                    backend_options={**REST_BM25, "threads": args.threads, "heap": "1g"}),
        }
        services = {name: RetrievalService(config) for name, config in configs.items()}
        by_k = {str(k): measure_depth(services, requests, steps, k) for k in args.k}
        server_rss = rss_bytes(server.process.pid)
        services["http"].retriever.close()

    result = {
        "what": "backend http (Anserini REST server) vs in-process Lucene, same Vaswani index, through RetrievalService",
        "queries": len(requests), "step": args.step, "bm25": REST_BM25,
        "http_max_concurrency": args.max_concurrency, "lucene_threads": args.threads,
        "by_k": by_k,
        "rest_server_rss_bytes": server_rss,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg": os.getloadavg()},
        "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=REPO_ROOT).stdout.strip(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = all(m["answers_equal"] == m["answers_compared"] and not any(e["errors"] for e in m["engines"].values())
             for m in by_k.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
