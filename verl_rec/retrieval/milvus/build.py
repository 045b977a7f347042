"""corpus.jsonl -> a Milvus collection (BM25 full-text or dense), resumably, with its manifest.

Rows go in corpus order in fixed batches; an interrupted build leaves a collection without a
manifest, and re-running the same build counts the rows already there and continues from the
last whole batch (re-written with upsert, so a batch cut in half is not doubled). Dense builds
first embed the corpus with our encoder into a resumable embeddings folder (reused when
complete), then insert those vectors. A finished collection is refused unless ``replace``.

A local ``index_path`` is a folder holding the embedded engine's ``milvus.db`` and the usual
``verl_rec_index.json``; for a URI the manifest lives in the engine (see ``schema``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from verl_rec.retrieval.base import is_engine_uri
from verl_rec.retrieval.corpus import CorpusError, CorpusFormat, iter_corpus
from verl_rec.retrieval.index_metadata import (
    IndexFolderOccupiedError,
    IndexMismatchError,
    refuse_foreign_folder,
    write_index_metadata,
)
from verl_rec.retrieval.milvus.connection import Connection, Credentials, connect, local_db_file
from verl_rec.retrieval.milvus.schema import (
    ENGLISH_ANALYZER,
    FORMAT_VERSION,
    CollectionLayout,
    create_schema,
    drop_all,
    read_manifest,
    write_manifest,
)

logger = logging.getLogger(__name__)

_BATCH = 1000
_MAX_TEXT_BYTES = 65_535


def _fit_text(text: str) -> tuple[str, bool]:
    """``text`` cut to Milvus' VARCHAR limit on a character boundary; True when it was cut."""
    raw = text.encode("utf-8")
    if len(raw) <= _MAX_TEXT_BYTES:
        return text, False
    return raw[:_MAX_TEXT_BYTES].decode("utf-8", errors="ignore"), True


def _count_rows(client: Any, collection: str) -> int:
    client.load_collection(collection)
    rows = client.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return int(rows[0]["count(*)"])


def _open_collection(conn: Connection, layout: CollectionLayout, replace: bool) -> int:
    """Create the collection or find the unfinished one to resume; return the rows already in it."""
    client = conn.client
    if read_manifest(client, layout.collection) is not None:
        if not replace:
            raise IndexFolderOccupiedError(f"Milvus collection {layout.collection!r} at {conn.where} is already built; "
                                           "pass --replace (replace=True) to rebuild it, or choose another --collection")
        drop_all(client, layout)
    elif replace:
        drop_all(client, layout)
    if client.has_collection(layout.collection):
        described = client.describe_collection(layout.collection).get("description", "")
        try:
            started_as = json.loads(described).get("layout")
        except (json.JSONDecodeError, AttributeError):
            started_as = None
        if started_as != layout.to_dict():
            raise IndexMismatchError(f"Milvus collection {layout.collection!r} at {conn.where} holds an unfinished "
                                     f"build of another layout ({started_as or 'not a verl_rec build'}); pass "
                                     "--replace to start over, or choose another --collection")
        done = _count_rows(client, layout.collection)
        logger.info("resuming Milvus collection %s at %s after %d rows", layout.collection, conn.where, done)
        return done
    schema, index = create_schema(client, layout, description=json.dumps({"layout": layout.to_dict()}))
    client.create_collection(layout.collection, schema=schema, index_params=index)
    return 0


def _bm25_rows(corpus_path: Path, fmt: CorpusFormat, layout: CollectionLayout, stats: dict[str, int]) -> Iterator[dict]:
    for doc_id, text in iter_corpus(corpus_path, fmt):
        stats["corpus_docs"] += 1
        if not text.strip():
            stats["empty_docs"] += 1  # Lucene indexes no empty document either; counted in the manifest
            continue
        text, cut = _fit_text(text)
        stats["truncated_docs"] += cut
        yield {layout.id_field: doc_id, layout.text_field: text}


def _dense_rows(embeddings_dir: Path, layout: CollectionLayout, stats: dict[str, int]) -> Iterator[dict]:
    from verl_rec.retrieval.dense.embeddings import load_embeddings

    embeddings = load_embeddings(embeddings_dir)
    for row, doc_id in enumerate(embeddings.ids):
        stats["corpus_docs"] += 1
        yield {layout.id_field: doc_id, layout.vector_field: embeddings.vectors[row].tolist()}


def _insert(conn: Connection, layout: CollectionLayout, rows: Iterator[dict], done: int, total: int,
            progress: bool) -> int:
    """Insert ``rows`` after the first ``done`` (the last partial batch is upserted); return the count."""
    from tqdm import tqdm

    resume_at = done - done % _BATCH
    bar = tqdm(total=total, initial=resume_at, unit="doc", desc=f"milvus {layout.collection}", disable=not progress)
    batch: list[dict] = []
    written = 0
    for position, row in enumerate(rows):
        if position < resume_at:
            continue
        batch.append(row)
        if len(batch) == _BATCH:
            written += _write(conn, layout, batch, upsert=position < done + _BATCH and done > resume_at)
            bar.update(len(batch))
            batch = []
    if batch:
        written += _write(conn, layout, batch, upsert=done > resume_at)
        bar.update(len(batch))
    bar.close()
    conn.client.flush(layout.collection)
    return resume_at + written


def _write(conn: Connection, layout: CollectionLayout, batch: list[dict], upsert: bool) -> int:
    if upsert:
        conn.client.upsert(layout.collection, batch)
    else:
        conn.client.insert(layout.collection, batch)
    return len(batch)


def build_milvus_index(
    corpus_path: str | Path,
    index_path: str | Path,
    fmt: CorpusFormat = CorpusFormat(),
    collection: str = "corpus",
    mode: str = "bm25",
    id_field: str = "id",
    text_field: str = "text",
    vector_field: str = "",
    analyzer: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
    embeddings: str | Path | None = None,
    index_type: str = "AUTOINDEX",
    index_params: Mapping[str, Any] | None = None,
    replace: bool = False,
    token_env: str | None = None,
    user_env: str | None = None,
    password_env: str | None = None,
    progress: bool = True,
) -> Path | str:
    """Build (or resume) the Milvus collection of a corpus; return ``index_path``.

    ``mode="bm25"``: Milvus analyses ``text_field`` with ``analyzer`` (default: the English one
    closest to Lucene's) and scores BM25. ``mode="dense"``: ``encoder`` (EncoderConfig fields,
    ``model`` required) embeds the corpus into ``embeddings`` (default ``<index_path>_embeddings``,
    or ``./milvus_<collection>_embeddings`` for a URI), and ``index_type`` / ``index_params``
    choose the ANN index (AUTOINDEX: Milvus chooses; HNSW M/efConstruction, servers only;
    IVF_FLAT nlist; FLAT exact). Credentials as the
    retriever's: names of environment variables.
    """
    corpus_path = Path(corpus_path)
    if not corpus_path.is_file():
        raise CorpusError(f"corpus file {corpus_path} does not exist")
    remote = is_engine_uri(index_path)
    if not remote:
        refuse_foreign_folder(index_path, "milvus", is_index=local_db_file(index_path).is_file())  # resumable
    started = time.perf_counter()
    encoder_meta = None
    embeddings_dir = None
    dims = 0
    if mode == "dense":
        from verl_rec.retrieval.dense.embeddings import build_embeddings, load_embeddings

        if not (encoder or {}).get("model"):
            raise ValueError("a dense Milvus collection needs an encoder model: encoder={'model': <local folder>}")
        embeddings_dir = Path(embeddings or (f"milvus_{collection}_embeddings" if remote else f"{index_path}_embeddings"))
        build_embeddings(corpus_path, embeddings_dir, dict(encoder or {}), fmt=fmt, progress=progress)
        loaded = load_embeddings(embeddings_dir)
        dims, encoder_meta = int(loaded.vectors.shape[1]), loaded.meta["encoder"]
        default_params = {"HNSW": {"M": 32, "efConstruction": 200}, "IVF_FLAT": {"nlist": 128}}.get(index_type, {})
        index_params = {**default_params, **dict(index_params or {})}
    layout = CollectionLayout(collection=collection, mode=mode, id_field=id_field, text_field=text_field,
                              vector_field=vector_field, analyzer=dict(analyzer or ENGLISH_ANALYZER),
                              index_type=index_type, index_params=dict(index_params or {}), dims=dims)
    conn = connect(index_path, Credentials(token_env, user_env, password_env), create=True)
    try:
        done = _open_collection(conn, layout, replace)
        stats = {"corpus_docs": 0, "empty_docs": 0, "truncated_docs": 0}
        if mode == "bm25":
            total = sum(1 for _ in iter_corpus(corpus_path, fmt))
            rows = _bm25_rows(corpus_path, fmt, layout, stats)
        else:
            total = len(load_embeddings(embeddings_dir).ids)
            rows = _dense_rows(embeddings_dir, layout, stats)
        _insert(conn, layout, rows, done, total, progress)
        if stats["truncated_docs"]:
            logger.warning("%d documents were longer than Milvus' %d-byte text field and were cut",
                           stats["truncated_docs"], _MAX_TEXT_BYTES)
        num_docs = _count_rows(conn.client, layout.collection)
        manifest = {
            "format": "verl_rec.milvus", "format_version": FORMAT_VERSION, "backend": "milvus",
            "layout": layout.to_dict(), "mode": mode, "num_docs": num_docs, "doc_count": num_docs,
            "corpus_path": str(corpus_path.resolve()), **stats,
            "encoder": encoder_meta, "embeddings_dir": str(embeddings_dir.resolve()) if embeddings_dir else None,
            "milvus_engine": "milvus-lite" if not remote else "server", "build_seconds": round(time.perf_counter() - started, 2),
        }
        write_manifest(conn.client, layout, manifest)
    finally:
        conn.close()
    if not remote:
        write_index_metadata(index_path, "milvus", FORMAT_VERSION, {k: v for k, v in manifest.items()
                                                                  if k not in ("format", "format_version", "backend")})
    logger.info("milvus %s collection %s of %d docs built at %s", mode, collection, num_docs, index_path)
    return index_path if remote else Path(index_path)


__all__ = ["build_milvus_index"]
