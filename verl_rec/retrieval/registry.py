"""Retrieval backends by name, so that configs (recipes, reward kwargs, CLIs) stay plain data.

Each backend is a :class:`~verl_rec.retrieval.base.Retriever` class and an index builder
(corpus JSONL -> index folder). The built-in ones are registered by import path and imported
only when first used: importing this module imports no engine (pyserini, numba, torch, faiss).
Others register the way veRL registers reward managers::

    @register_backend("mine", builder=build_my_index)
    class MyRetriever(Retriever): ...
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from verl_rec.retrieval.base import Retriever

_Target = str | Callable[..., Any] | None  # "package.module:attribute" (imported on first use), or the object
R = TypeVar("R", bound=type[Retriever])


@dataclass(frozen=True)
class BackendEntry:
    """One backend: its retriever class and its index builder, each given as an object or as
    ``"module:attribute"`` to import on first use."""

    name: str
    retriever: _Target
    builder: _Target = None

    def retriever_class(self) -> type[Retriever]:
        return _resolve(self.retriever)

    def index_builder(self) -> Callable[..., Path]:
        if self.builder is None:
            raise ValueError(f"retrieval backend {self.name!r} has no index builder; build its index with its own tools")
        return _resolve(self.builder)


_REGISTRY: dict[str, BackendEntry] = {}


def _resolve(target: _Target) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def register_backend(name: str, retriever: _Target = None, builder: _Target = None) -> Any:
    """Register backend ``name``; with no ``retriever``, return a class decorator that registers it.

    Registering a name twice with other targets is an error (two engines under one name would
    make a recipe ambiguous).
    """

    def add(target: _Target) -> Any:
        entry = BackendEntry(name, target, builder)
        known = _REGISTRY.get(name)
        if known is not None and known != entry:
            raise ValueError(f"retrieval backend {name!r} is already registered ({known.retriever}); "
                             "choose another name")
        _REGISTRY[name] = entry
        return target

    if retriever is None:
        def decorator(cls: R) -> R:
            return add(cls)

        return decorator
    return add(retriever)


def backend_names() -> tuple[str, ...]:
    """The registered backend names, in registration order (built-ins first)."""
    return tuple(_REGISTRY)


def backend(name: str) -> BackendEntry:
    """The entry of backend ``name``; an unknown name fails naming the known ones."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"unknown retrieval backend {name!r}; choose one of {backend_names()}")
    return entry


def retriever_class(name: str) -> type[Retriever]:
    """The :class:`Retriever` class of backend ``name`` (imports its engine module)."""
    return backend(name).retriever_class()


def open_retriever(kind: str, index_path: str, **options: Any) -> Retriever:
    """Return a ready retriever of backend ``kind``; unknown kinds and bad paths fail with what to do.

    ``options`` go to the backend's constructor (``Bm25sRetriever`` has its own ``backend``
    option, numba or numpy, hence ``kind`` here).
    """
    return retriever_class(kind)(index_path, **options)


def build_index(kind: str, corpus_path: str | Path, index_dir: str | Path, progress: bool = True,
                verbose: bool = False, **options: Any) -> Path:
    """Build an index of backend ``kind`` from a corpus JSONL; return the index folder.

    ``progress`` (our progress bars) and ``verbose`` (the engine's own output on the console)
    go to builders that take them; ``options`` (``fmt`` and the backend's settings) go to the
    builder, and one it does not take fails naming the ones it does.
    """
    builder = backend(kind).index_builder()
    parameters = inspect.signature(builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            accepted = [n for n in list(parameters)[2:] if n not in ("progress", "verbose")]
            raise ValueError(f"the {kind} index builder has no option(s) {unknown}; it accepts {accepted}")
    for name, value in (("progress", progress), ("verbose", verbose)):
        if name in parameters:
            options[name] = value
    return builder(corpus_path, index_dir, **options)


register_backend("lucene", "verl_rec.retrieval.lucene.retriever:LuceneRetriever",
                 "verl_rec.retrieval.lucene.build:build_lucene_index")
register_backend("bm25s", "verl_rec.retrieval.bm25s.retriever:Bm25sRetriever",
                 "verl_rec.retrieval.bm25s.build:build_bm25s_index")
register_backend("dense", "verl_rec.retrieval.dense.retriever:DenseRetriever",
                 "verl_rec.retrieval.dense.build:build_dense_index_from_corpus")
register_backend("http", "verl_rec.retrieval.http.retriever:HttpRetriever")  # an engine of your own; no builder
register_backend("milvus", "verl_rec.retrieval.milvus.retriever:MilvusRetriever",
                 "verl_rec.retrieval.milvus.build:build_milvus_index")

__all__ = [
    "BackendEntry",
    "backend",
    "backend_names",
    "build_index",
    "open_retriever",
    "register_backend",
    "retriever_class",
]
