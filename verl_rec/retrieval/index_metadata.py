"""The ``verl_rec_index.json`` every index folder carries: write, read, check, and its errors.

Every builder (Lucene, bm25s, dense, and ``data_preprocess/build_index`` on top of them)
records here which backend built an index, in which on-disk format and with which settings.
Loaders read it back through :func:`load_index_metadata`; the retrieval service refuses an
index that does not fit the recipe (:func:`check_index_matches`) instead of silently scoring
with another engine or other BM25 parameters.

One error family, :class:`RetrievalIndexError`, for every index folder that cannot be used or
written as asked; each message names the folder or file and says what to do.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

METADATA_FILE = "verl_rec_index.json"
#: engine output of a build (the Lucene indexer's log), kept next to the index it made
BUILD_LOG = "build.log"
#: recipe options that must equal the value the index was built with, when the index records it
CHECKED_SETTINGS = ("k1", "b", "lucene_exact")


class RetrievalIndexError(ValueError):
    """An index folder that cannot be used or written as asked (the message says what to do)."""


class IndexNotFoundError(RetrievalIndexError, FileNotFoundError):
    """No index where one was expected: a missing folder, no metadata file, no Lucene commit."""


class IndexCorruptError(RetrievalIndexError):
    """An index whose files are unreadable or disagree with each other: rebuild it."""


class IndexMismatchError(RetrievalIndexError):
    """An index built for another backend, format version, analyzer or settings than asked for."""


class IndexFolderOccupiedError(RetrievalIndexError, FileExistsError):
    """A build was pointed at a folder holding something it must not overwrite."""


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def read_index_metadata(index_dir: str | Path) -> dict[str, Any] | None:
    """The metadata of ``index_dir``; None when it has none (e.g. an index built outside verl-rec)."""
    path = Path(index_dir) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: unreadable index metadata ({exc}); rebuild the index") from None
    if not isinstance(meta, dict):
        raise IndexCorruptError(f"{path}: index metadata is a JSON {type(meta).__name__}, not an object; rebuild the index")
    return meta


def load_index_metadata(index_dir: str | Path, backend: str, format_version: int, build_hint: str) -> dict[str, Any]:
    """The metadata of a verl-rec ``backend`` index in the format version this code reads.

    Loaders call this before opening anything else, so that a wrong path fails with the path
    and ``build_hint`` (e.g. ``"build_bm25s_index()"``) rather than deep inside the engine.
    """
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        raise IndexNotFoundError(f"{backend} index directory {index_dir} does not exist; build it with {build_hint}")
    meta = read_index_metadata(index_dir)
    if meta is None:
        raise IndexNotFoundError(f"{index_dir} has no {METADATA_FILE}: not a (complete) verl_rec {backend} index; "
                                 f"build it with {build_hint}")
    if meta.get("format") != index_format(backend) or meta.get("backend") != backend:
        raise IndexMismatchError(f"{index_dir / METADATA_FILE} does not describe a verl_rec {backend} index "
                                 f"(backend {meta.get('backend')!r}, format {meta.get('format')!r})")
    if meta.get("format_version") != format_version:
        raise IndexMismatchError(f"{backend} index {index_dir} has format version {meta.get('format_version')}, this "
                                 f"code reads version {format_version}; rebuild it with {build_hint}")
    return meta


def index_format(backend: str) -> str:
    """The ``format`` a verl-rec builder of ``backend`` writes (``verl_rec.bm25s``, ...)."""
    return f"verl_rec.{backend}"


# ----------------------------------------------------------------------------------------------
# Checking
# ----------------------------------------------------------------------------------------------


def _same(key: str, have: Any, want: Any) -> bool:
    if key == "corpus_path" and have:
        return str(Path(have).resolve()) == str(Path(want).resolve())
    if isinstance(want, float) and isinstance(have, (int, float)) and not isinstance(have, bool):
        return bool(np.float32(have) == np.float32(want))  # the engines compute in float32
    return have == want


def check_built_with(meta: Mapping[str, Any], index_dir: str | Path, expected: Mapping[str, Any], asked: str,
                     remedy: str) -> None:
    """Raise :class:`IndexMismatchError` for the first ``expected`` setting the index was built
    otherwise (``None`` expects nothing; a setting the index does not record is not checked)."""
    for key, want in expected.items():
        if want is None or key not in meta:
            continue
        have = meta[key]
        if not _same(key, have, want):
            raise IndexMismatchError(f"{index_dir} was built with {key}={have!r} but {asked} {key}={want!r}; "
                                     + remedy.format(key=key, want=want))


def check_index_matches(index_path: str | Path, backend: str, options: Mapping[str, Any]) -> None:
    """Raise with both values and what to do when the index does not fit the recipe."""
    meta = read_index_metadata(index_path)
    if meta is None:
        return  # an index built outside verl-rec: the backend's own loader checks what it can
    built = meta.get("backend")
    if built not in (None, backend):
        raise IndexMismatchError(
            f"{index_path} is a {built!r} index but the recipe asks for backend {backend!r}; "
            f"point reward.reward_kwargs.retrieval.index_path at a {backend} index or change the backend")
    settings = {**meta, **(meta.get("settings") or {})}
    check_built_with(settings, index_path, {key: options[key] for key in CHECKED_SETTINGS if key in options},
                     "the recipe sets",
                     "rebuild the index with python -m verl_rec.data_preprocess.build_index or fix the recipe")


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def _holds_only_build_log(folder: Path) -> bool:
    return all(entry.name == BUILD_LOG for entry in folder.iterdir())


def refuse_other_backend(index_dir: str | Path, backend: str) -> None:
    """Raise :class:`IndexFolderOccupiedError` when ``index_dir`` holds an index of another backend.

    The cheap part of :func:`refuse_foreign_folder`, for callers that check before a long step
    (the dense embedding) that comes before the builder's own check.
    """
    try:
        meta = read_index_metadata(index_dir) or {}
    except IndexCorruptError:
        meta = {}
    built = meta.get("backend")
    if built is not None and built != backend:
        raise IndexFolderOccupiedError(f"{index_dir} holds a {built} index; choose another index folder for {backend}")


def refuse_foreign_folder(index_dir: str | Path, backend: str, is_index: bool | None = None) -> None:
    """Raise :class:`IndexFolderOccupiedError` unless a ``backend`` build may write ``index_dir``.

    It may when the folder is absent, empty (or holds only a failed build's log), or holds an
    index of the same backend: one whose metadata says so (or is unreadable: a rebuild is the
    fix), or one the engine itself recognises (``is_index``, for indexes built outside
    verl-rec). Anything else is never overwritten.
    """
    index_dir = Path(index_dir)
    if not index_dir.exists():
        return
    if not index_dir.is_dir():
        raise IndexFolderOccupiedError(f"{index_dir} is a file, not an index folder; refusing to overwrite it")
    if _holds_only_build_log(index_dir):
        return
    refuse_other_backend(index_dir, backend)
    if not (index_dir / METADATA_FILE).is_file() and not is_index:
        raise IndexFolderOccupiedError(f"{index_dir} exists and is not a verl_rec {backend} index; "
                                       "refusing to write into it")


def write_index_metadata(index_dir: str | Path, backend: str, format_version: int, fields: Mapping[str, Any]) -> Path:
    """Write a builder's metadata: its ``fields`` under the common keys. Builders call this last,
    so that a crashed build never has a metadata file and never loads."""
    meta = {"format": index_format(backend), "format_version": format_version, "backend": backend, **fields}
    meta.setdefault("created_at", _now())
    return _write(Path(index_dir), meta)


def update_index_metadata(index_dir: str | Path, updates: Mapping[str, Any],
                          defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Add keys to an index's metadata (the builder's own keys are kept unless ``updates`` names
    them; ``defaults`` fill only what is missing), starting the file if there is none."""
    try:
        meta = read_index_metadata(index_dir) or {}
    except IndexCorruptError:
        meta = {}
    for key, value in (defaults or {}).items():
        meta.setdefault(key, value)
    meta.update(updates)
    meta.setdefault("created_at", _now())
    _write(Path(index_dir), meta)
    return meta


def _write(index_dir: Path, meta: Mapping[str, Any]) -> Path:
    path = index_dir / METADATA_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def index_dir_swap(index_dir: str | Path) -> Iterator[Path]:
    """Yield a fresh sibling folder to build an index in; it replaces ``index_dir`` on success.

    A crash mid-build leaves the previous index (or nothing) in place, never half an index.
    """
    index_dir = Path(index_dir)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.building-", dir=index_dir.parent))
    try:
        yield tmp
        if index_dir.exists():
            shutil.rmtree(index_dir)
        tmp.rename(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = [
    "BUILD_LOG",
    "CHECKED_SETTINGS",
    "METADATA_FILE",
    "IndexCorruptError",
    "IndexFolderOccupiedError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "RetrievalIndexError",
    "check_built_with",
    "check_index_matches",
    "index_dir_swap",
    "index_format",
    "load_index_metadata",
    "read_index_metadata",
    "refuse_foreign_folder",
    "refuse_other_backend",
    "update_index_metadata",
    "write_index_metadata",
]
