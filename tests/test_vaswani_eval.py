"""Real data, both BM25 engines: our nDCG@10 / Recall@100 equal trec_eval's on the same runs."""

from __future__ import annotations

import pytest

from verl_rec.metrics import ndcg_at_k_batch, recall_at_k_batch

pytrec_eval = pytest.importorskip("pytrec_eval")
pytestmark = pytest.mark.slow


def trec_eval_means(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per-query trec_eval values; the run's scores encode the rank (trec_eval sorts by score)."""
    run = {qid: {doc: float(len(ids) - i) for i, doc in enumerate(ids)} for qid, ids in rankings.items()}
    return pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)


def check_against_trec_eval(name: str, rankings: dict[str, list[str]], qrels) -> None:
    qids = sorted(rankings, key=int)
    assert len(qids) == 93
    ours_ndcg = ndcg_at_k_batch([rankings[q] for q in qids], [qrels.get(q, {}) for q in qids], 10)
    ours_recall = recall_at_k_batch([rankings[q] for q in qids], [qrels.get(q, {}) for q in qids], 100)
    oracle = trec_eval_means({q: rankings[q] for q in qids if rankings[q]}, qrels)
    for i, q in enumerate(qids):
        if q in oracle:
            assert ours_ndcg[i] == pytest.approx(oracle[q]["ndcg_cut_10"], abs=1e-6)
            assert ours_recall[i] == pytest.approx(oracle[q]["recall_100"], abs=1e-6)
        else:  # trec_eval silently drops queries with an empty run: ours must be 0 there
            assert ours_ndcg[i] == 0.0 and ours_recall[i] == 0.0
    print(f"\n[{name}] Vaswani BM25: nDCG@10 {ours_ndcg.mean():.4f}  Recall@100 {ours_recall.mean():.4f} "
          f"(equal to trec_eval per query to 1e-6)")


def run_all(retriever, topics, k=100) -> dict[str, list[str]]:
    qids = sorted(topics, key=int)
    hits = retriever.search([topics[q] for q in qids], k=k)
    return {q: list(h.ids) for q, h in zip(qids, hits)}


def test_lucene_metrics_equal_trec_eval(vaswani, vaswani_lucene):
    check_against_trec_eval("lucene", run_all(vaswani_lucene, vaswani.topics), vaswani.qrels)


def test_bm25s_metrics_equal_trec_eval(vaswani, vaswani_bm25s):
    check_against_trec_eval("bm25s", run_all(vaswani_bm25s, vaswani.topics), vaswani.qrels)
