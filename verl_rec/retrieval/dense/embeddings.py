"""Resumable corpus embedding: a JSONL corpus in, a memory-mappable float32 matrix out.

Embedding a real catalogue takes hours on CPU (and long on GPU), so a build must survive
being killed. The output directory holds:

* ``embeddings.npy``: ``(count, dims)`` float32, a plain ``.npy`` (``np.load(mmap_mode="r")``);
* ``ids.json``: the document ids in row order (JSON, so any id string survives);
* ``progress.json``: rows done so far, rewritten atomically after each chunk's rows are
  flushed to disk (a row is never claimed before it is written); removed when complete;
* ``embeddings.json``: the metadata (encoder, pooling, normalise, max length, dims, count,
  corpus path/size/mtime), written last: its presence means the build is complete.

Why resuming gives bit-identical vectors: the corpus is encoded in fixed chunks of
``chunk_size`` rows counted from row 0, and the encoder forms its batches from one chunk
alone (longest first, stable), so every row meets exactly the same batch, padding and kernels
whether or not the run was interrupted. A resumed build keeps the chunk and batch size it
started with. Same torch thread count and device are needed for the last bits too (CPU matmul
reductions can differ across thread counts); a resume with others is allowed but logged.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from verl_rec.retrieval.corpus import CorpusError, CorpusFormat, iter_corpus
from verl_rec.retrieval.dense.encoders import Encoder, EncoderConfig

logger = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.npy"
IDS_FILE = "ids.json"
META_FILE = "embeddings.json"
PROGRESS_FILE = "progress.json"
FORMAT = "verl_rec.embeddings"
FORMAT_VERSION = 1


class EmbeddingsError(ValueError):
    """An embeddings directory that is missing, incomplete, or built with other settings."""


@dataclass(frozen=True)
class EmbeddingSet:
    """A complete embedding build: vectors (memory-mapped), ids in row order, metadata."""

    path: Path
    vectors: np.ndarray
    ids: list[str]
    meta: dict[str, Any]


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EmbeddingsError(f"{path} is unreadable ({exc})") from None


def corpus_fingerprint(corpus_path: Path) -> dict[str, Any]:
    """Path, size and mtime: enough to notice that a corpus changed under a paused build."""
    stat = corpus_path.stat()
    return {"path": str(corpus_path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _identity(corpus: Mapping[str, Any], fmt: CorpusFormat, count: int, encoder: EncoderConfig, dims: int) -> dict[str, Any]:
    """What must not change between a build and its resumption (or a cached result)."""
    return {"corpus": dict(corpus), "corpus_format": {"id_field": fmt.id_field, "text_fields": list(fmt.text_fields)},
            "count": count, "model": encoder.model, "engine": encoder.engine, "dtype": encoder.dtype, "dims": dims,
            **encoder.vector_settings()}


def _differences(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    return [f"{key}: {have.get(key)!r} on disk vs {value!r} now" for key, value in want.items() if have.get(key) != value]


def _chunks(corpus: Iterator[tuple[str, str]], ids: list[str], start: int, size: int) -> Iterator[tuple[int, list[str]]]:
    """``(first row, texts)`` of the fixed chunks from row ``start`` on, checking ids match."""
    texts: list[str] = []
    first = start
    for row, (doc_id, text) in enumerate(corpus):
        if row < start:
            continue
        if row >= len(ids) or doc_id != ids[row]:
            raise EmbeddingsError(f"corpus changed during the build: row {row} has id {doc_id!r}, expected "
                                  f"{ids[row] if row < len(ids) else 'end of corpus'!r}; rebuild with overwrite=True")
        texts.append(text)
        if len(texts) == size:
            yield first, texts
            first, texts = first + size, []
    if texts:
        yield first, texts


def _set_torch_threads(threads: int | None) -> Callable[[], None]:
    """Pin torch's intra-op threads for the build; return how to restore them."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    return lambda: torch.set_num_threads(before)


def build_embeddings(
    corpus_path: str | Path,
    out_dir: str | Path,
    encoder_config: EncoderConfig | Mapping[str, Any] | str | Encoder,
    fmt: CorpusFormat = CorpusFormat(),
    batch_size: int | None = None,
    chunk_size: int = 1024,
    threads: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Path:
    """Embed every document of a JSONL corpus into ``out_dir``; resume an interrupted build.

    ``encoder_config`` may be a loaded :class:`Encoder` (reused, not closed). A complete build
    with the same corpus and vector settings is returned as is; one with other settings, or a
    paused build of another corpus/encoder, is refused unless ``overwrite=True``.
    ``on_chunk(rows_done, count)`` runs after each chunk is on disk (progress hooks, tests).
    """
    import torch

    corpus_path, out_dir = Path(corpus_path), Path(out_dir)
    if not corpus_path.is_file():
        raise CorpusError(f"corpus file {corpus_path} does not exist")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = encoder_config if isinstance(encoder_config, Encoder) else Encoder(encoder_config)
    ids = [doc_id for doc_id, _ in iter_corpus(corpus_path, fmt)]
    if not ids:
        raise CorpusError(f"{corpus_path}: the corpus has no documents")
    identity = _identity(corpus_fingerprint(corpus_path), fmt, len(ids), encoder.config, encoder.dims)

    meta_path, progress_path = out_dir / META_FILE, out_dir / PROGRESS_FILE
    if meta_path.is_file() and not overwrite:
        stale = _differences(_read_json(meta_path).get("identity", {}), identity)
        if not stale:
            logger.info("embeddings at %s are complete and up to date", out_dir)
            return out_dir
        raise EmbeddingsError(f"{out_dir} holds embeddings built differently ({'; '.join(stale)}); "
                              "pass overwrite=True or another out_dir")
    state = _read_json(progress_path) if progress_path.is_file() and not overwrite else None
    if state is not None:
        stale = _differences(state.get("identity", {}), identity)
        if stale:
            raise EmbeddingsError(f"{out_dir} holds a paused build of other settings ({'; '.join(stale)}); "
                                  "pass overwrite=True to start over")
    restore_threads = _set_torch_threads(threads)
    try:
        run = {"batch_size": int(batch_size or encoder.config.batch_size), "chunk_size": int(chunk_size),
               "device": encoder.config.device, "torch_threads": torch.get_num_threads()}
        if state is None:
            meta_path.unlink(missing_ok=True)
            vectors = np.lib.format.open_memmap(out_dir / EMBEDDINGS_FILE, mode="w+", dtype=np.float32,
                                                shape=(len(ids), encoder.dims))
            (out_dir / IDS_FILE).write_text(json.dumps(ids), encoding="utf-8")
            state = {"format": FORMAT, "identity": identity, "run": run, "rows_done": 0}
            _write_json_atomic(progress_path, state)
        else:
            vectors = _reopen(out_dir, len(ids), encoder.dims)
            for key in ("batch_size", "chunk_size"):
                if run[key] != state["run"][key]:
                    logger.warning("resuming with the build's %s=%s (asked for %s) so rows stay bit-identical",
                                   key, state["run"][key], run[key])
            for key in ("device", "torch_threads"):
                if run[key] != state["run"][key]:
                    logger.warning("resuming with %s=%s, the build started with %s: vectors may differ in the last bits",
                                   key, run[key], state["run"][key])
            run = {**run, "batch_size": state["run"]["batch_size"], "chunk_size": state["run"]["chunk_size"]}
            logger.info("resuming embeddings at %s from row %d of %d", out_dir, state["rows_done"], len(ids))
        stats = _encode_rows(corpus_path, fmt, ids, encoder, vectors, state, run, progress_path, progress, on_chunk)
    finally:
        restore_threads()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "identity": identity,
            "encoder": encoder.config.to_dict(), "dims": encoder.dims, "count": len(ids), "dtype": "float32",
            "corpus_path": identity["corpus"]["path"], "corpus_size": identity["corpus"]["size"],
            "corpus_mtime_ns": identity["corpus"]["mtime_ns"], "run": run, "last_run": stats,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _write_json_atomic(meta_path, meta)
    progress_path.unlink(missing_ok=True)
    logger.info("embedded %d docs (%d this run) at %.1f docs/s into %s", len(ids), stats["rows"], stats["docs_per_s"], out_dir)
    return out_dir


def _reopen(out_dir: Path, count: int, dims: int) -> np.ndarray:
    try:
        vectors = np.load(out_dir / EMBEDDINGS_FILE, mmap_mode="r+")
    except (OSError, ValueError) as exc:
        raise EmbeddingsError(f"paused build at {out_dir} has no readable {EMBEDDINGS_FILE} ({exc}); "
                              "pass overwrite=True") from exc
    if vectors.shape != (count, dims) or vectors.dtype != np.float32:
        raise EmbeddingsError(f"{out_dir / EMBEDDINGS_FILE} is {vectors.shape} {vectors.dtype}, expected "
                              f"({count}, {dims}) float32; pass overwrite=True")
    return vectors


def _encode_rows(corpus_path: Path, fmt: CorpusFormat, ids: list[str], encoder: Encoder, vectors: np.ndarray,
                 state: dict[str, Any], run: Mapping[str, Any], progress_path: Path, progress: bool,
                 on_chunk: Callable[[int, int], None] | None) -> dict[str, Any]:
    """Encode the remaining chunks, checkpointing after each; return this run's throughput."""
    from tqdm.auto import tqdm

    start = int(state["rows_done"])
    started = time.perf_counter()
    with tqdm(total=len(ids), initial=start, unit="doc", desc="embedding", disable=not progress, smoothing=0.05) as bar:
        for first, texts in _chunks(iter_corpus(corpus_path, fmt), ids, start, int(run["chunk_size"])):
            vectors[first:first + len(texts)] = encoder.encode_docs(texts, batch_size=int(run["batch_size"]))
            vectors.flush()  # rows reach the file before progress.json claims them
            state["rows_done"] = first + len(texts)
            _write_json_atomic(progress_path, state)
            bar.update(len(texts))
            if on_chunk is not None:
                on_chunk(state["rows_done"], len(ids))
    if int(state["rows_done"]) != len(ids):
        raise EmbeddingsError(f"corpus {corpus_path} ended at row {state['rows_done']} of {len(ids)}: it changed "
                              "during the build; rebuild with overwrite=True")
    seconds = time.perf_counter() - started
    rows = len(ids) - start
    return {"rows": rows, "seconds": round(seconds, 3), "docs_per_s": rows / seconds if seconds > 0 else 0.0}


def load_embeddings(path: str | Path, mmap: bool = True) -> EmbeddingSet:
    """A complete build from :func:`build_embeddings`, with a clear error if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise EmbeddingsError(f"embeddings directory {path} does not exist; build it with build_embeddings()")
    if not (path / META_FILE).is_file():
        hint = "resume it with build_embeddings()" if (path / PROGRESS_FILE).is_file() else "build it with build_embeddings()"
        raise EmbeddingsError(f"{path} has no {META_FILE}: the embedding build is not complete; {hint}")
    meta = _read_json(path / META_FILE)
    if meta.get("format") != FORMAT:
        raise EmbeddingsError(f"{path / META_FILE} does not describe verl_rec embeddings (format {meta.get('format')!r})")
    vectors = np.load(path / EMBEDDINGS_FILE, mmap_mode="r" if mmap else None)
    ids = _read_json(path / IDS_FILE)
    if vectors.shape != (meta["count"], meta["dims"]) or len(ids) != meta["count"]:
        raise EmbeddingsError(f"{path} is inconsistent: {vectors.shape} vectors, {len(ids)} ids, metadata says "
                              f"({meta['count']}, {meta['dims']}); rebuild it")
    return EmbeddingSet(path=path, vectors=vectors, ids=ids, meta=meta)

