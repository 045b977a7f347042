"""The ``verl_rec_index.json`` an index folder carries, and the check that it fits a recipe.

``data_preprocess/build_index`` (and the bm25s / dense builders) record which backend built
an index and with which settings. The retrieval service refuses an index that does not match
the recipe (another backend, other BM25 parameters) instead of silently scoring with it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

METADATA_FILE = "verl_rec_index.json"
#: recipe options that must equal the value the index was built with, when the index records it
CHECKED_SETTINGS = ("k1", "b", "lucene_exact")


class IndexMismatchError(ValueError):
    """The index on disk was built for another backend or other settings than the recipe's."""


def read_index_metadata(index_path: str | Path) -> dict[str, Any] | None:
    path = Path(index_path) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise IndexMismatchError(f"{path}: unreadable index metadata ({exc}); rebuild the index") from None


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
    for key in CHECKED_SETTINGS:
        if key in options and key in settings and options[key] != settings[key]:
            raise IndexMismatchError(
                f"{index_path} was built with {key}={settings[key]!r} but the recipe sets {key}={options[key]!r}; "
                "rebuild the index with python -m data_preprocess.build_index or fix the recipe")


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
