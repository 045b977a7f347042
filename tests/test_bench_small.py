"""The reward benchmark on a small catalog, as a CORRECTNESS test of the fast paths (no timing).

10k synthetic products (``bench/catalog.py``), GRPO-shaped model outputs (``bench/queries.py``):

* the scorer's fast path (service ``target_positions``, one sample at a time) gives exactly the
  rewards and metric values of its slow path (full rankings, one batch), for Lucene and bm25s;
* on Lucene, both equal the paper's reward loop (pyserini ``search(q, k)`` -> NDCG of the hits);
* bm25s and Lucene rank alike (overlap@1000, printed, asserted loosely);
* the benchmark's own pieces (paper loop, raw engines, table, targets, chart) run end to end.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LUCENE_HEAP

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

pytestmark = pytest.mark.slow

N_PRODUCTS = 10_000
K = 1000
EVAL = ("ndcg@10", "ndcg@100", "recall@100", "mrr@100")


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory):
    from bench.catalog import ensure_catalog

    return ensure_catalog(N_PRODUCTS, seed=0, root=tmp_path_factory.mktemp("bench_cache"))


@pytest.fixture(scope="module")
def steps(small_catalog):
    from bench.queries import QueryFactory

    factory = QueryFactory(small_catalog, pool=N_PRODUCTS, seed=0)
    long_factory = QueryFactory(small_catalog, pool=N_PRODUCTS, seed=0, samples_per_step=240)
    return [factory.step(1, "short"), factory.step(2, "short"), long_factory.step(1, "long")]


def _spec():
    from verl_rec.reward.contract import RewardSpec

    return RewardSpec(metric=f"ndcg@{K}", eval_metrics=EVAL)


def _fast_and_slow(service, samples):
    """Rewards by the reward's one scorer, two ways: one sample at a time against the service's
    target positions (the reward manager's path), and in one batch from full rankings of the
    same engine (``compute_score``'s and the evaluation's path)."""
    from verl_rec.qrels import as_qrels
    from verl_rec.reward.scorer import prepare, score_with_search, score_with_service
    from verl_rec.tasks.formats import FormatSpec

    spec = _spec()
    pendings = [prepare(s.text, as_qrels(s.targets), FormatSpec(), spec) for s in samples]

    async def one_by_one():
        return await asyncio.gather(*(score_with_service(p, service) for p in pendings))

    fast = asyncio.run(one_by_one())
    unique = list(dict.fromkeys(p.query for p in pendings if p.query is not None))
    hits = dict(zip(unique, service.retriever.search(unique, K)))
    slow = score_with_search(pendings, lambda queries, k: [hits[q] for q in queries], count_errors=False)
    return fast, slow, {q: h.ids for q, h in hits.items()}


@pytest.fixture(scope="module")
def services(small_catalog):
    from verl_rec.retrieval.service.actor import RetrievalService
    from verl_rec.retrieval.service.config import ServiceConfig

    opened = {
        "lucene": RetrievalService(ServiceConfig(backend="lucene", index_path=str(small_catalog / "index_lucene"),
                                                 backend_options={"engine": "direct", "heap": LUCENE_HEAP})),
        "bm25s": RetrievalService(ServiceConfig(backend="bm25s", index_path=str(small_catalog / "index_bm25s"))),
    }
    yield opened
    for service in opened.values():
        service.retriever.close()


@pytest.fixture(scope="module")
def outcomes(services, steps):
    samples = [s for step in steps for s in step.samples]
    return {name: _fast_and_slow(service, samples) for name, service in services.items()}, samples


def test_catalog_is_deterministic_and_prefix_stable():
    from bench.catalog import build_vocabulary, generate_chunk, product_ids

    vocab = build_vocabulary(0)
    short, full = generate_chunk(vocab, 1, 0, stop=50), generate_chunk(vocab, 1, 0, stop=120)
    assert short[0] == full[0][:50] and short[1] == full[1][:50] and short[2] == full[2][:50]
    assert generate_chunk(build_vocabulary(0), 1, 0, stop=50)[1] == short[1]
    ids = product_ids(0, 100_000)
    assert len(set(ids)) == len(ids) and ids != sorted(ids)  # unique, and id order is not index order


def test_query_steps_are_grpo_shaped(steps):
    from bench.queries import describe

    short, _, long = steps
    shape = describe(short)
    assert shape["samples"] == 640 and shape["prompts"] == 54
    assert shape["unique_queries"] < shape["well_formed"] < shape["samples"]  # repeats and malformed outputs
    assert 3 <= shape["words_per_query"] <= 8 and 150 <= describe(long)["words_per_query"] <= 210
    for sample in short.samples:
        if sample.query is not None:
            assert f'<answer>{json.dumps({"query": sample.query})}</answer>' in sample.text


@pytest.mark.parametrize("backend", ["lucene", "bm25s"])
def test_fast_path_equals_slow_path(outcomes, backend):
    results, samples = outcomes
    fast, slow, _ = results[backend]
    assert len(fast) == len(samples)
    for f, s in zip(fast, slow):
        assert f.score == s.score and f.extra == s.extra  # exact: same positions, same arithmetic
    scores = np.array([f.score for f in fast])
    assert np.all((scores == -2) | (scores == 0) | (scores > 0.1))
    assert (scores == -2).sum() == sum(s.query is None for s in samples)
    assert (scores > 0.1).mean() > 0.3, "queries written from the target's text should often find it"
    print(f"\n[{backend}] {len(fast)} samples: fast path == slow path; mean reward {scores.mean():.4f}")


def test_engine_fast_path_positions(services, steps):
    """When an engine has its own target-positions path, it matches the full ranking."""
    from verl_rec.metrics import first_positions

    samples = [s for s in steps[0].samples if s.query is not None][:200]
    for name, service in services.items():
        engine = service.retriever
        assert "target_positions" in vars(type(engine)), f"{name} lost its own target_positions fast path"
        got = engine.target_positions([s.query for s in samples], K, [list(s.targets) for s in samples])
        hits = engine.search([s.query for s in samples], K)
        assert got == [first_positions(h.ids, s.targets, K) for h, s in zip(hits, samples)]


def test_lucene_paths_equal_the_paper_loop(outcomes, small_catalog):
    from bench.paths import PaperLoop

    results, samples = outcomes
    fast = results["lucene"][0]
    loop = PaperLoop(small_catalog / "index_lucene", K)
    try:
        for f, s in zip(fast, samples):
            assert f.score == pytest.approx(loop.score(s.text, s.targets), abs=1e-12)
    finally:
        loop.close()


def test_bm25s_ranks_like_lucene(outcomes):
    from bench.paths import overlap_at_k

    results, _ = outcomes
    lucene, bm25s = results["lucene"][2], results["bm25s"][2]
    overlaps = [overlap_at_k(lucene[q], bm25s[q], K) for q in lucene]
    same_reward = np.mean([a.score == b.score for a, b in zip(results["lucene"][0], results["bm25s"][0])])
    print(f"\n[overlap@{K}] bm25s vs lucene over {len(overlaps)} queries: mean {np.mean(overlaps):.4f}, "
          f"min {np.min(overlaps):.4f}; identical rewards {same_reward:.1%}")
    assert np.mean(overlaps) >= 0.95 and same_reward >= 0.9


def test_benchmark_pieces_run_end_to_end(small_catalog, steps, tmp_path):
    """Paper loop + raw engines of bench.run on one small step, then the report's table, targets and chart."""
    from bench import report
    from bench import run as bench

    step = steps[2]
    cell = bench.Cell(N_PRODUCTS, "long", shape={"samples": len(step.samples)})
    rewards, rankings = bench.run_cell_engines(cell, small_catalog, [step], [step], ["lucene", "bm25s"], K, 2,
                                               baseline=True)
    assert set(cell.paths) == {"paper", "raw/lucene", "raw/bm25s"} and len(rewards["paper"]) == len(step.samples)
    assert set(rankings["lucene"]) == set(step.unique_queries())
    raw = cell.paths["raw/bm25s"]["seconds"]
    # the reference is the service's own engine; the index opened in the driver is shown beside it
    cell.paths["ours/bm25s"] = {"seconds": raw * 1.1, "raw_service_seconds": raw, "raw_seconds": raw * 1.25,
                                "qps": 1.0, "rss_peak": 1e9, "service": {"engine_seconds": raw * 0.55}, "workers": 2}
    cell.paths["ours/bm25s@8w"] = {"seconds": raw * 1.3, "raw_service_seconds": raw, "raw_seconds": raw, "qps": 0.9,
                                   "rss_peak": 1.05e9, "service": {"engine_seconds": raw * 0.55}, "workers": 8}
    cell.memory = {"bm25s": {f"workers_{n}": {"rss_peak": rss} for n, rss in ((1, 1e9), (2, 0.99e9), (8, 1.05e9))}}
    results = {"cells": [cell.__dict__], "headline_size": N_PRODUCTS}
    table = report.format_table(results)
    assert "paper loop" in table and "+10%" in table and "+30%" in table and "50%" in table and "-12%" in table
    assert "(numba) [2 workers]" in table and "(numba) [8 workers]" in table
    checks = {c["target"]: c for c in report.evaluate_targets(results)}
    assert set(checks) >= {"ours/bm25s vs paper loop", "ours/bm25s plumbing over raw engine"}
    plumbing = checks["ours/bm25s plumbing over raw engine"]
    assert plumbing["value"] == pytest.approx(0.1)  # the main run, not @8w; the service's engine, not the driver's
    assert plumbing["over_driver_engine"] == pytest.approx(1.1 / 1.25 - 1)
    assert "vs the index opened in the driver: -12.0%" in report.format_targets(list(checks.values()))
    memory = checks["service RSS bm25s: workers 8 vs 1 worker"]  # the most workers against one
    assert memory["value"] == pytest.approx(0.05) and memory["met"]
    report.draw_chart(results, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 5_000
