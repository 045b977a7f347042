"""External engine vs in-process: Milvus BM25 (embedded Milvus Lite, and the same engine as a
separate server process reached by URI) against our Lucene and bm25s backends, in one run.

``python -m bench.engines --products 100000 --out bench/results/``

* quality: NDCG@10 / @100 of the raw queries, Milvus BM25 vs Lucene BM25, same k, on Vaswani
  (all 93 topics) and on the bundled example catalog (the synthetic ESCI task's queries);
* engine: per GRPO-shaped step of :mod:`bench.queries` (640 outputs, k=1000), the engine call the
  retrieval service makes (``target_positions`` over the step's distinct queries), each backend
  in its own fresh process (one JVM, one engine): seconds per step, samples/s, ratio to Lucene;
* memory: peak RSS of that process (the service's per-node share), and for embedded Milvus the
  engine child's RSS too (what moves off the node with an external engine).

Not measured: a multi-node Milvus cluster (none here); the Ray plumbing, which is the same for
every backend (bench/run.py measures it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

K = 1000
HEAP = "2g"
ROOT = Path(__file__).resolve().parents[1]
VASWANI = ROOT.parent / "shared" / "data" / "vaswani"


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def _open(backend: str, index: str, threads: int):
    from verl_rec.retrieval.registry import open_retriever

    if backend == "lucene":
        from verl_rec.retrieval.lucene.java import ensure_java

        ensure_java(HEAP)
        return open_retriever("lucene", index, heap=HEAP, threads=threads)
    if backend == "bm25s":
        return open_retriever("bm25s", index, threads=threads)
    return open_retriever("milvus", index)


def one_engine(backend: str, index: str, catalog: str, steps: int, threads: int) -> dict[str, Any]:
    """Time the service's engine call on ``steps`` steps in this (fresh) process; RSS after."""
    from bench.paths import positions_request
    from bench.queries import QueryFactory

    engine = _open(backend, index, threads)
    factory = QueryFactory(Path(catalog))
    for warm in factory.steps(range(1000, 1003), "short"):
        engine.target_positions(*positions_request(warm)[:1], K, positions_request(warm)[1])
    seconds = []
    for step in factory.steps(range(steps), "short"):
        queries, targets = positions_request(step)
        started = time.perf_counter()
        engine.target_positions(queries, K, targets)
        seconds.append(time.perf_counter() - started)
    child = getattr(getattr(engine, "_conn", None), "engine", None)
    out = {"backend": backend, "step_seconds": seconds, "median_step_s": float(np.median(seconds)),
           "samples_per_s": 640 / float(np.median(seconds)), "process_rss_mb": _rss(os.getpid()) / 2**20,
           "engine_child_rss_mb": _rss(child.pid) / 2**20 if child is not None else 0.0}
    engine.close()
    return out


def _ndcg(hits, qrels: list[dict[str, float]], k: int) -> float:
    from verl_rec.metrics import ndcg_at_k

    return float(np.mean([ndcg_at_k(h.ids, q, k) for h, q in zip(hits, qrels)]))


def quality(name: str, corpus: Path, queries: list[str], qrels: list[dict[str, float]], work: Path) -> dict[str, Any]:
    """NDCG@10/@100 and overlap@10 of raw queries, Lucene vs Milvus BM25 (embedded), same k."""
    from verl_rec.retrieval.lucene.build import build_lucene_index
    from verl_rec.retrieval.lucene.java import ensure_java
    from verl_rec.retrieval.milvus.build import build_milvus_index
    from verl_rec.retrieval.registry import open_retriever

    ensure_java(HEAP)
    lucene_dir = build_lucene_index(corpus, work / f"{name}_lucene", progress=False)
    milvus_dir = build_milvus_index(corpus, work / f"{name}_milvus", progress=False)
    with open_retriever("lucene", str(lucene_dir), heap=HEAP) as lucene:
        lucene_hits = lucene.search(queries, 100)
    with open_retriever("milvus", str(milvus_dir)) as milvus:
        milvus_hits = milvus.search(queries, 100)
    overlap = float(np.mean([len(set(a.ids[:10]) & set(b.ids[:10])) / max(1, len(a.ids[:10]))
                             for a, b in zip(lucene_hits, milvus_hits)]))
    row = {"collection": name, "queries": len(queries), "k": 100, "overlap@10": round(overlap, 4)}
    for k in (10, 100):
        row[f"lucene_ndcg@{k}"] = round(_ndcg(lucene_hits, qrels, k), 4)
        row[f"milvus_ndcg@{k}"] = round(_ndcg(milvus_hits, qrels, k), 4)
    return row


def vaswani_quality(work: Path) -> dict[str, Any]:
    from verl_rec.retrieval.trec import read_qrels, read_trec_topics, trec_docs_to_jsonl

    corpus = work / "vaswani.jsonl"
    trec_docs_to_jsonl(VASWANI / "corpus" / "doc-text.trec", corpus)
    topics, qrels = read_trec_topics(VASWANI / "query-text.trec"), read_qrels(VASWANI / "qrels")
    qids = sorted(topics, key=int)
    return quality("vaswani", corpus, [topics[q] for q in qids], [qrels.get(q, {}) for q in qids], work)


def example_quality(work: Path) -> dict[str, Any]:
    import pandas as pd

    from verl_rec.builders.esci import EsciOptions, build_esci
    from verl_rec.devkit.synthetic_catalog import write_esci_release

    raw = write_esci_release(work / "example_raw")
    build_esci(raw / "shopping_queries_dataset_examples.parquet", work / "example",
               products_path=raw / "shopping_queries_dataset_products.parquet",
               category_map_path=raw / "product_categories.csv", options=EsciOptions())
    rows = pd.concat([pd.read_parquet(work / "example" / f"{s}.parquet") for s in ("train", "val", "test")])
    return quality("bundled example", work / "example" / "corpus.jsonl", rows["query"].tolist(),
                   [json.loads(q) for q in rows["qrels"]], work)


def _run_child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.engines", *args], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.engines {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(products: int, steps: int, threads: int, work: Path) -> dict[str, Any]:
    from bench.catalog import ensure_catalog
    from verl_rec.retrieval.milvus.build import build_milvus_index
    from verl_rec.retrieval.milvus.lite_process import LiteProcess, free_port

    catalog = ensure_catalog(products)
    started = time.perf_counter()
    milvus_dir = catalog / "index_milvus"
    if not (milvus_dir / "verl_rec_index.json").is_file():
        build_milvus_index(catalog / "corpus.jsonl", milvus_dir, progress=True)
    build_s = time.perf_counter() - started
    common = ["--catalog", str(catalog), "--steps", str(steps), "--threads", str(threads)]
    rows = [_run_child(["--one", b, "--index", str(catalog / f"index_{b}"), *common]) for b in ("lucene", "bm25s")]
    rows.append({**_run_child(["--one", "milvus", "--index", str(milvus_dir), *common]), "backend": "milvus (embedded)"})
    server = LiteProcess(milvus_dir / "milvus.db", port=free_port())
    try:
        row = _run_child(["--one", "milvus", "--index", server.uri, *common])
        row.update(backend="milvus (server process)", engine_child_rss_mb=_rss(server.pid) / 2**20)
        rows.append(row)
    finally:
        server.stop()
    lucene = rows[0]["median_step_s"]
    for row in rows:
        row["step_time_vs_lucene"] = round(row["median_step_s"] / lucene, 2)
    return {"products": products, "steps": steps, "k": K, "threads": threads,
            "milvus_build_seconds": round(build_s, 1), "engines": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--catalog", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_engine(args.one, args.index, args.catalog, args.steps, args.threads)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        work = Path(tmp)
        result = {"quality": [vaswani_quality(work), example_quality(work)],
                  "speed": speed(args.products, args.steps, args.threads, work),
                  "milvus": {"milvus-lite": "2.5.1", "pymilvus": __import__("pymilvus").__version__}}
    out = Path(args.out) / "engines.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
