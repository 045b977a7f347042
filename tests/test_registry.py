"""Backends by name: the registry opens and builds through real engines, and imports none until asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from verl_rec.retrieval import registry
from verl_rec.retrieval.base import Retriever, SearchHits

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pyserini", "jnius", "numba", "torch", "faiss", "bm25s", "transformers", "sentence_transformers", "ray")


def test_importing_the_registry_imports_no_engine():
    code = ("import sys, verl_rec.retrieval.registry as r, verl_rec.retrieval.service.client; "
            f"print(r.backend_names()); print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    names, loaded = out.stdout.strip().splitlines()
    assert names.startswith("('lucene', 'bm25s', 'dense'") and "'http'" in names and "'milvus'" in names
    assert loaded == "[]"
    milvus = subprocess.run([sys.executable, "-c", "import sys, verl_rec.retrieval.registry; print('pymilvus' in sys.modules)"],
                            capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert milvus.stdout.strip() == "False"


def test_built_in_backends_resolve_to_their_classes_and_builders():
    from verl_rec.retrieval.bm25s.build import build_bm25s_index
    from verl_rec.retrieval.bm25s.retriever import Bm25sRetriever
    from verl_rec.retrieval.dense.build import build_dense_index_from_corpus
    from verl_rec.retrieval.dense.retriever import DenseRetriever
    from verl_rec.retrieval.lucene.build import build_lucene_index
    from verl_rec.retrieval.lucene.retriever import LuceneRetriever

    expected = {"lucene": (LuceneRetriever, build_lucene_index), "bm25s": (Bm25sRetriever, build_bm25s_index),
                "dense": (DenseRetriever, build_dense_index_from_corpus)}
    for name, (cls, builder) in expected.items():
        assert registry.retriever_class(name) is cls and cls.name == name
        assert registry.backend(name).index_builder() is builder


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown retrieval backend 'elastic'.*'lucene', 'bm25s', 'dense'"):
        registry.open_retriever("elastic", "/nowhere")
    with pytest.raises(ValueError, match="unknown retrieval backend 'elastic'"):
        registry.build_index("elastic", "c.jsonl", "ix")


def test_register_a_backend_with_the_decorator(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    built = []

    def build_words(corpus_path, index_dir, fmt=None, progress=True):
        built.append(progress)
        Path(index_dir).mkdir()
        (Path(index_dir) / "words.json").write_text(Path(corpus_path).read_text())
        return Path(index_dir)

    @registry.register_backend("words", builder=build_words)
    class WordRetriever(Retriever):
        name = "words"

        def __init__(self, index_path, boost=1):
            self.words = json.loads((Path(index_path) / "words.json").read_text())

        def search(self, queries, k):
            return [SearchHits(ids=[w for w in self.words if w in q][:k]) for q in queries]

    assert registry.backend_names()[-1] == "words"
    corpus = tmp_path / "c.json"
    corpus.write_text(json.dumps(["red", "shoe"]))
    index = registry.build_index("words", corpus, tmp_path / "ix", progress=False, verbose=True)
    assert built == [False]  # progress passed, verbose not: this builder does not take it
    with registry.open_retriever("words", str(index), boost=2) as retriever:
        assert retriever.search(["a red shoe"], 5)[0].ids == ["red", "shoe"]
    with pytest.raises(ValueError, match=r"no option\(s\) \['k1'\]; it accepts \['fmt'\]"):
        registry.build_index("words", corpus, tmp_path / "ix2", k1=1.2)
    registry.register_backend("words", builder=build_words)(WordRetriever)  # the same again: fine
    with pytest.raises(ValueError, match="'words' is already registered"):
        registry.register_backend("words", "elsewhere:Other")


def test_a_backend_without_builder_says_so(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_backend("prebuilt", "verl_rec.retrieval.lucene.retriever:LuceneRetriever")
    with pytest.raises(ValueError, match="'prebuilt' has no index builder"):
        registry.build_index("prebuilt", "c.jsonl", "ix")


def test_dense_builder_checks_its_options_before_embedding(tmp_path):
    """Embedding a catalogue takes hours: a missing model or a misspelt faiss option fails first."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "d1", "contents": "red shoe"}) + "\n")
    with pytest.raises(ValueError, match="needs an encoder model"):
        registry.build_index("dense", corpus, tmp_path / "ix", progress=False)
    with pytest.raises(ValueError, match=r"build_dense_index has no option\(s\) \['efC'\]; it accepts \['kind', 'M'"):
        registry.build_index("dense", corpus, tmp_path / "ix", encoder={"model": "unused"}, index={"efC": 100})
    assert not (tmp_path / "ix_embeddings").exists() and not (tmp_path / "ix").exists()
