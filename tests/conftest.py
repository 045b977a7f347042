"""Shared test fixtures: the bundled Vaswani collection and indexes built from it.

Fixtures are session-scoped so that a corpus is converted and indexed once per test run.
The Lucene fixtures start this process' JVM (heap ``LUCENE_HEAP``): tests that need another
heap must run in their own process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VASWANI_DIR = REPO_ROOT.parent / "shared" / "data" / "vaswani"
LUCENE_HEAP = "2g"


@dataclass(frozen=True)
class Vaswani:
    """The Vaswani (NPL) collection converted to our formats."""

    source_dir: Path
    corpus_path: Path  # our JSONL corpus: {"id", "contents"}
    topics: dict[str, str]  # query id -> query text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}
    docs: dict[str, str]  # doc id -> text


@pytest.fixture(scope="session")
def vaswani(tmp_path_factory: pytest.TempPathFactory) -> Vaswani:
    """The Vaswani collection as a JSONL corpus in a temp dir, with topics, qrels and texts."""
    from verl_rec.retrieval.corpus import iter_corpus
    from verl_rec.retrieval.trec import read_qrels, read_trec_topics, trec_docs_to_jsonl

    docs_file = VASWANI_DIR / "corpus" / "doc-text.trec"
    if not docs_file.is_file():
        # A failure, not a skip: a silently skipped Lucene/bm25s parity test would read as a pass.
        pytest.fail(f"Vaswani test collection not found: expected {docs_file} (<repo>/../shared/data/vaswani, "
                    "the NPL collection in TREC format: corpus/doc-text.trec, query-text.trec, qrels)", pytrace=False)
    corpus = tmp_path_factory.mktemp("vaswani") / "corpus.jsonl"
    trec_docs_to_jsonl(docs_file, corpus)
    return Vaswani(
        source_dir=VASWANI_DIR,
        corpus_path=corpus,
        topics=read_trec_topics(VASWANI_DIR / "query-text.trec"),
        qrels=read_qrels(VASWANI_DIR / "qrels"),
        docs=dict(iter_corpus(corpus)),
    )


@pytest.fixture(scope="session")
def vaswani_lucene_index(vaswani: Vaswani, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lucene (Anserini, Porter, BM25-ready) index of the Vaswani corpus, built once."""
    from verl_rec.retrieval.lucene.build import build_lucene_index

    index_dir = tmp_path_factory.mktemp("vaswani-lucene") / "index"
    started = time.perf_counter()
    build_lucene_index(vaswani.corpus_path, index_dir, threads=2, heap=LUCENE_HEAP, progress=False)
    print(f"\n[lucene] indexed {len(vaswani.docs)} Vaswani docs in {time.perf_counter() - started:.1f}s")
    return index_dir


@pytest.fixture(scope="session")
def vaswani_lucene(vaswani_lucene_index: Path) -> Iterator[LuceneRetriever]:  # noqa: F821
    """A LuceneRetriever (k1=1.2, b=0.75) over the Vaswani index; starts the JVM."""
    from verl_rec.retrieval.lucene.retriever import LuceneRetriever

    started = time.perf_counter()
    retriever = LuceneRetriever(vaswani_lucene_index, heap=LUCENE_HEAP)
    print(f"\n[lucene] pyserini import + JVM start + searcher open: {time.perf_counter() - started:.1f}s")
    yield retriever
    retriever.close()


@pytest.fixture(scope="session")
def vaswani_bm25s(vaswani: Vaswani, tmp_path_factory: pytest.TempPathFactory):
    """A Bm25sRetriever (Lucene-exact scoring) over the Vaswani corpus, built once."""
    from verl_rec.retrieval.bm25s.build import build_bm25s_index
    from verl_rec.retrieval.bm25s.retriever import Bm25sRetriever

    index = build_bm25s_index(vaswani.corpus_path, tmp_path_factory.mktemp("vaswani-bm25s") / "index", progress=False)
    retriever = Bm25sRetriever(index)
    retriever.warmup()
    yield retriever
    retriever.close()
