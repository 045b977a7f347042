"""The in-process bm25s backend against Lucene (pyserini 1.6.0) on the real Vaswani collection.

Lucene-exact mode must reproduce Lucene's float32 scores and Anserini's order (score desc,
docid string asc) for all 93 topics; the bm25s-native mode must be close. Figures are
printed (run with ``-s``); speed is printed, never asserted.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from verl_rec.retrieval.base import SearchHits
from verl_rec.retrieval.bm25s import lucene_scoring as lx
from verl_rec.retrieval.bm25s.build import build_bm25s_index
from verl_rec.retrieval.bm25s.kernels import numba_available
from verl_rec.retrieval.bm25s.retriever import Bm25sRetriever
from verl_rec.retrieval.index_metadata import METADATA_FILE, IndexCorruptError, IndexMismatchError, IndexNotFoundError

KERNELS = ["numba", "numpy"] if numba_available() else ["numpy"]


@pytest.fixture(scope="module")
def exact_index(vaswani, tmp_path_factory) -> Path:
    started = time.perf_counter()
    index = build_bm25s_index(vaswani.corpus_path, tmp_path_factory.mktemp("bm25s") / "exact", progress=False)
    print(f"\n[bm25s] Lucene-exact index of {len(vaswani.docs)} docs built in {time.perf_counter() - started:.1f}s")
    return index


@pytest.fixture(scope="module")
def native_index(vaswani, tmp_path_factory) -> Path:
    return build_bm25s_index(vaswani.corpus_path, tmp_path_factory.mktemp("bm25s") / "native", lucene_exact=False,
                             progress=False)


@pytest.fixture(scope="module")
def retrievers(exact_index) -> dict[str, Bm25sRetriever]:
    out = {}
    for backend in KERNELS:
        started = time.perf_counter()
        out[backend] = Bm25sRetriever(exact_index, backend=backend, threads=2)
        out[backend].warmup()
        print(f"\n[bm25s] {backend}: load + warmup {time.perf_counter() - started:.1f}s")
    return out


@pytest.fixture(scope="module")
def topics(vaswani) -> list[str]:
    return list(vaswani.topics.values())


def _compare(lucene: list[SearchHits], ours: list[SearchHits]) -> tuple[float, float, int]:
    """(share of identical rankings, max relative score error, hits compared).

    Scores are compared for every Lucene hit: where the rankings differ, only documents tied
    with the last hit may be swapped (the cut-off of a tie), and they are checked to be so.
    """
    same, worst, compared = 0, 0.0, 0
    for want, got in zip(lucene, ours):
        same += want.ids == got.ids
        ours_by_id = dict(zip(got.ids, got.scores.tolist()))
        for doc, score in zip(want.ids, want.scores.tolist()):
            if doc in ours_by_id:
                worst = max(worst, abs(ours_by_id[doc] - score) / score)
                compared += 1
            else:
                assert np.isclose(score, want.scores[-1], rtol=1e-5), f"{doc} missing from our top-k but not tied at the cut"
    return same / len(lucene), worst, compared


@pytest.mark.slow
@pytest.mark.parametrize("k", [100, 1000])
def test_lucene_exact_equals_lucene(vaswani_lucene, retrievers, topics, k):
    lucene = vaswani_lucene.search_exact(topics, k)
    for backend, retriever in retrievers.items():
        ours = retriever.search(topics, k)
        same, worst, compared = _compare(lucene, ours)
        bit_equal = sum(np.array_equal(a.scores, b.scores) for a, b in zip(lucene, ours))
        print(f"\n[bm25s exact/{backend}] k={k}: identical rankings {same:.1%} of {len(topics)} topics; "
              f"max relative score error {worst:.2e} over {compared} hits; bit-equal score lists {bit_equal}/{len(topics)}")
        assert worst <= 1e-5
        assert same >= 0.99


@pytest.mark.slow
def test_reported_scores_equal_pyserini(vaswani_lucene, retrievers, topics):
    """pyserini rounds scores (ScoreTiesAdjusterReranker): reproduced bit for bit."""
    reported = vaswani_lucene.search(topics, 100)
    ours = retrievers[KERNELS[0]].search(topics, 100)
    assert [r.ids for r in reported] == [o.ids for o in ours]
    equal = sum(np.array_equal(lx.anserini_adjusted_scores(o.scores), r.scores) for r, o in zip(reported, ours))
    print(f"\n[bm25s] Anserini-adjusted scores bit-equal to pyserini's for {equal}/{len(topics)} topics")
    assert equal == len(topics)


def test_ties_follow_docid_strings(retrievers, topics):
    hits = retrievers[KERNELS[0]].search(topics, 1000)
    ties = string_vs_number = 0
    for h in hits:
        scores = h.scores
        assert np.all(np.diff(scores) <= 0)
        for i in np.flatnonzero(scores[1:] == scores[:-1]):
            ties += 1
            assert h.ids[i] < h.ids[i + 1]
            string_vs_number += int(h.ids[i]) > int(h.ids[i + 1])
    print(f"\n[bm25s] {ties} exact ties at k=1000, {string_vs_number} where string order != numeric order")
    assert string_vs_number > 0  # the collection really exercises string order


@pytest.mark.slow
def test_repeated_query_terms_are_exact(vaswani_lucene, retrievers, topics, exact_index):
    """Anserini boosts a repeated term by its count; boosts 3, 5, ... are recomputed exactly."""
    rng = random.Random(3)
    queries = [" ".join(w + (" " + w) * rng.choice([0, 1, 2, 4, 5, 6, 10]) for w in t.split()) for t in topics]
    lucene = vaswani_lucene.search_exact(queries, 1000)
    for backend, retriever in retrievers.items():
        ours = retriever.search(queries, 1000)
        same, worst, _ = _compare(lucene, ours)
        print(f"\n[bm25s exact/{backend}] repeated terms: identical rankings {same:.1%}, max rel error {worst:.2e}")
        assert worst <= 1e-5 and same >= 0.99
    # why recompute: boost * score(boost 1) is within 1e-6 relative, but not bit-equal
    r = retrievers[KERNELS[0]]
    term_idf = np.repeat(r._idf, np.diff(r._indptr))
    norm_inverse = r._cache[np.asarray(r._norms)[r._indices]]
    for boost in (2, 3, 5, 7):
        exact = lx.term_score(lx.term_weight(boost, term_idf), r._tf, norm_inverse)
        linear = np.float32(boost) * r._data
        rel = float(np.max(np.abs(exact.astype(np.float64) - linear) / exact))
        print(f"  boost {boost}: max rel diff of boost*score1 {rel:.1e}, bit-equal {np.mean(exact == linear):.1%}")
        assert rel < 1e-6
        assert (boost & (boost - 1)) != 0 or np.array_equal(exact, linear)


@pytest.mark.slow
def test_native_bm25s_mode_is_close(vaswani_lucene, native_index, topics):
    retriever = Bm25sRetriever(native_index, backend=KERNELS[0])
    lucene = vaswani_lucene.search_exact(topics, 100)
    ours = retriever.search(topics, 100)
    overlap = np.mean([len(set(a.ids) & set(b.ids)) / max(1, len(a.ids)) for a, b in zip(lucene, ours)])
    rel = []
    for a, b in zip(lucene, ours):
        mine = dict(zip(b.ids, b.scores.tolist()))
        rel += [abs(mine[d] - s) / s for d, s in zip(a.ids, a.scores.tolist()) if d in mine]
    print(f"\n[bm25s native] overlap@100 {overlap:.3f}, relative score diff median {np.median(rel):.2e} "
          f"max {np.max(rel):.2e}, identical rankings {sum(a.ids == b.ids for a, b in zip(lucene, ours))}/{len(topics)}")
    assert overlap >= 0.97
    assert np.median(rel) < 0.02


def test_numba_and_numpy_backends_agree(retrievers, topics):
    if len(retrievers) < 2:
        pytest.skip("numba is not installed")
    rng = random.Random(5)
    queries = topics + [" ".join(rng.sample(t.split() * 3, len(t.split()) * 2)) for t in topics]
    a = retrievers["numba"].search(queries, 1000)
    b = retrievers["numpy"].search(queries, 1000)
    assert [h.ids for h in a] == [h.ids for h in b]
    assert all(np.array_equal(x.scores, y.scores) for x, y in zip(a, b))


def test_kernel_scratch_rows_are_clean_between_calls(exact_index, retrievers, topics):
    """The numba kernel keeps one accumulator row per thread across calls and hands queries out
    dynamically: any batch split and thread count gives the reference ranking, and every row is
    all zeros again after a call (the next query starts from clean scores)."""
    if len(retrievers) < 2:
        pytest.skip("numba is not installed")
    expected = [h.ids for h in retrievers["numpy"].search(topics, 100)]
    engine = Bm25sRetriever(exact_index, backend="numba", threads=2)
    for threads, size in ((2, 1), (2, 7), (1, 5), (2, len(topics))):
        engine.threads = threads
        got = [h.ids for start in range(0, len(topics), size) for h in engine.search(topics[start:start + size], 100)]
        assert got == expected, (threads, size)
        assert len(engine._acc_rows) == threads and not engine._acc_rows.any()


@pytest.mark.slow
def test_speed(retrievers, vaswani_lucene, topics):
    """Queries/s for 93 topics at k=1000 (printed, not asserted)."""
    lines = []
    for backend, retriever in retrievers.items():
        retriever.search(topics, 1000)
        started = time.perf_counter()
        for _ in range(3):
            retriever.search(topics, 1000)
        lines.append(f"{backend} {3 * len(topics) / (time.perf_counter() - started):,.0f} q/s")
    started = time.perf_counter()
    vaswani_lucene.search(topics, 1000)
    lines.append(f"pyserini (reference) {len(topics) / (time.perf_counter() - started):,.0f} q/s")
    print("\n[bm25s] speed, 93 Vaswani topics, k=1000, 2 threads: " + "; ".join(lines))


def test_save_load_roundtrip(exact_index, retrievers, topics, vaswani):
    meta = json.loads((exact_index / METADATA_FILE).read_text())
    assert meta["backend"] == "bm25s" and meta["lucene_exact"] is True
    assert meta["k1"] == 1.2 and meta["b"] == 0.75 and meta["num_docs"] == len(vaswani.docs)
    assert meta["corpus_path"] == str(Path(vaswani.corpus_path).resolve()) and meta["created_at"]
    assert (exact_index / "params.index.json").is_file()  # bm25s' own files
    expected = retrievers[KERNELS[0]].search(topics, 100)
    in_memory = Bm25sRetriever(exact_index, mmap=False, backend=KERNELS[0]).search(topics, 100)
    assert [h.ids for h in in_memory] == [h.ids for h in expected]
    assert all(np.array_equal(x.scores, y.scores) for x, y in zip(in_memory, expected))
    # bm25s itself can load and query the index (its stored values are the boost-1 Lucene scores)
    import bm25s

    model = bm25s.BM25.load(exact_index, mmap=True)
    terms = set(retrievers[KERNELS[0]].analyze(topics[0]))  # no repeated terms in this topic
    scores = model.get_scores([t for t in terms if t in model.vocab_dict])
    best = list(retrievers[KERNELS[0]]._ids).index(expected[0].ids[0])
    assert np.isclose(scores[best], expected[0].scores[0], rtol=1e-6) and scores.max() == scores[best]


def test_rebuild_replaces_and_foreign_dirs_are_refused(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": f"d{i}", "contents": f"red shoe {i}"}) for i in range(5)))
    index = build_bm25s_index(corpus, tmp_path / "idx", progress=False)
    build_bm25s_index(corpus, index, lucene_exact=False, progress=False)
    assert Bm25sRetriever(index).lucene_exact is False
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a verl_rec bm25s index"):
        build_bm25s_index(corpus, foreign, progress=False)
    assert not list(tmp_path.glob(".*building*"))


def test_metadata_mismatch_is_refused(exact_index, tmp_path, vaswani):
    with pytest.raises(IndexMismatchError, match="lucene_exact=True.*lucene_exact=False"):
        Bm25sRetriever(exact_index, lucene_exact=False)
    with pytest.raises(IndexMismatchError, match="k1=1.2.*k1=0.9"):
        Bm25sRetriever(exact_index, k1=0.9)
    with pytest.raises(IndexMismatchError, match="corpus_path"):
        Bm25sRetriever(exact_index, corpus_path=tmp_path / "other.jsonl")
    Bm25sRetriever(exact_index, k1=1.2, b=0.75, lucene_exact=True, corpus_path=vaswani.corpus_path)
    copy = tmp_path / "copy"
    shutil.copytree(exact_index, copy)
    meta = json.loads((copy / METADATA_FILE).read_text())
    (copy / METADATA_FILE).write_text(json.dumps({**meta, "analyzer": "something-else/v0"}))
    with pytest.raises(IndexMismatchError, match="analyzer 'something-else/v0'.*rebuild"):
        Bm25sRetriever(copy)
    (copy / METADATA_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(IndexMismatchError, match="format version 99"):
        Bm25sRetriever(copy)
    (copy / METADATA_FILE).write_text(json.dumps({**meta, "num_docs": 5}))
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        Bm25sRetriever(copy)
    (copy / METADATA_FILE).unlink()
    with pytest.raises(IndexNotFoundError, match="no verl_rec_index.json"):
        Bm25sRetriever(copy)
    with pytest.raises(IndexNotFoundError, match="does not exist"):
        Bm25sRetriever(tmp_path / "nowhere")


HOSTILE = [
    "", "   ", "\x00", "zzqqxv xqzzwv", ": ( ) \" * ? AND OR NOT ~ ^ [ ] { } \\ /", "the of and a",
    "contents:(microwave AND \"dielectric\")~2^3 [a TO b] {x} wave* ?", "\x00\x01\x1f\x7f micro\x00wave\x1b[0m",
    "диэлектрик 电介质 誘電体 유전체 عازل", "\ud800 \udfff microwave \ud83d", "a" * 100_000, "🙂" * 1000,
]


def test_hostile_queries_never_crash(retrievers, vaswani):
    retriever = retrievers[KERNELS[0]]
    rng = random.Random(11)
    words = " ".join(list(vaswani.docs.values())[:300]).split()
    long_query = " ".join(rng.choice(words) for _ in range(10_000))
    queries = HOSTILE + [long_query, None, 12345]
    hits = retriever.search(queries, 50)
    assert len(hits) == len(queries)
    for query, h in zip(queries, hits):
        assert len(h) <= 50 and len(h.ids) == len(h.scores)
        assert np.all(h.scores > 0), f"zero-score docs returned for {str(query)[:30]!r}"
    by_query = dict(zip(map(str, queries), hits))
    for empty in ["", "   ", "\x00", "zzqqxv xqzzwv", ": ( ) \" * ? AND OR NOT ~ ^ [ ] { } \\ /", "the of and a",
                  "a" * 100_000, "🙂" * 1000]:
        assert len(by_query[empty]) == 0, f"{empty[:20]!r} should match nothing"
    assert len(by_query[HOSTILE[6]]) == 50 and len(by_query[long_query]) == 50
    assert retriever.search(["microwave"], 0)[0].ids == [] and retriever.search([], 10) == []
    few = retriever.search(["microwave"], 10**9)[0]  # k beyond the corpus: every matching doc, no zero scores
    assert 0 < len(few) < retriever.num_docs and np.all(few.scores > 0)


def test_unknown_terms_only_give_empty_ranking(retrievers):
    for retriever in retrievers.values():
        assert retriever.search(["qqqzzzx wwwxxyq"], 10)[0].ids == []
        partly = retriever.search(["qqqzzzx microwave"], 10)[0]
        assert partly.ids == retriever.search(["microwave"], 10)[0].ids


@pytest.mark.slow
def test_edge_documents_equal_lucene(tmp_path):
    """Empty and stop-word-only documents (Lucene's docCount skips them), lengths around the
    exact/lossy norm boundary (24 tokens) and up to 5000 tokens, repeated query terms."""
    from conftest import LUCENE_HEAP
    from verl_rec.retrieval.lucene.build import build_lucene_index
    from verl_rec.retrieval.lucene.retriever import LuceneRetriever

    rng = random.Random(1)
    words = "red blue shoe shoes running runner iphone 8 case cases the of and a to is x-ray 3.5 don't café".split()
    docs = [{"id": "e0", "contents": ""}, {"id": "e1", "contents": "the of and a"}, {"id": "e2", "contents": "  "}]
    for i in range(300):
        n = rng.choice([1, 2, 5, 23, 24, 25, 40, 100, 1000, 5000])
        docs.append({"id": f"d{i}", "contents": " ".join(rng.choice(words) for _ in range(n))})
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in docs))
    build_lucene_index(corpus, tmp_path / "lucene", heap=LUCENE_HEAP, progress=False)
    ours = Bm25sRetriever(build_bm25s_index(corpus, tmp_path / "bm25s", progress=False), backend=KERNELS[0])
    queries = ["red shoe", "iphone 8", "running running running shoes", "blue blue blue blue blue case"]
    queries += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(100)]
    with LuceneRetriever(tmp_path / "lucene", heap=LUCENE_HEAP) as lucene:
        expected = lucene.search_exact(queries, 1000)
    got = ours.search(queries, 1000)
    assert [h.ids for h in got] == [h.ids for h in expected]
    assert all(np.array_equal(a.scores, b.scores) for a, b in zip(got, expected))


def test_open_through_factory(exact_index):
    from verl_rec.retrieval.registry import open_retriever

    # (open_retriever's first parameter is also named "backend": our backend= option cannot pass through it)
    retriever = open_retriever("bm25s", str(exact_index), threads=1)
    assert isinstance(retriever, Bm25sRetriever) and retriever.name == "bm25s"
    assert len(retriever.search(["microwave"], 5)[0]) == 5


@pytest.mark.parametrize("k", [10, 1000])
def test_target_positions_equal_the_ranking(retrievers, vaswani, topics, k):
    """The reward's shortcut (document numbers, no id strings) equals positions read off search()."""
    from verl_rec.metrics import first_positions

    qids = list(vaswani.topics)
    queries = [vaswani.topics[q] for q in qids] + HOSTILE + [None]
    targets = [sorted(vaswani.qrels.get(q, {})) + ["no-such-doc"] for q in qids]
    targets += [["1", "2", "1033", "no-such-doc"]] * (len(queries) - len(qids))
    queries, targets = queries + queries[:10], targets + targets[:10][::-1]  # repeats with other targets
    for backend, retriever in retrievers.items():
        hits = retriever.search(queries, k)
        got = retriever.target_positions(queries, k, targets)
        assert got == [first_positions(h.ids, t, k) for h, t in zip(hits, targets)], backend
        assert sum(map(len, got)) > (30 if k == 10 else 500)
    with pytest.raises(ValueError, match="target lists"):
        retriever.target_positions(queries[:2], k, targets[:1])
