"""The one index-metadata module: its error family, reading, writing and the checks builders and
loaders share. Each backend's own tests cover the same checks through its real engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from verl_rec.retrieval.index_metadata import (
    BUILD_LOG,
    METADATA_FILE,
    IndexCorruptError,
    IndexFolderOccupiedError,
    IndexMismatchError,
    IndexNotFoundError,
    RetrievalIndexError,
    check_built_with,
    check_index_matches,
    load_index_metadata,
    read_index_metadata,
    refuse_foreign_folder,
    update_index_metadata,
    write_index_metadata,
)


def test_one_error_family_that_callers_already_catch():
    for error in (IndexNotFoundError, IndexCorruptError, IndexMismatchError, IndexFolderOccupiedError):
        assert issubclass(error, RetrievalIndexError) and issubclass(error, ValueError)
    assert issubclass(IndexNotFoundError, FileNotFoundError)
    assert issubclass(IndexFolderOccupiedError, FileExistsError)
    assert not issubclass(RetrievalIndexError, IndexError)  # never the builtin's name or family


def test_write_read_and_load(tmp_path):
    path = write_index_metadata(tmp_path, "bm25s", 3, {"k1": 1.2, "corpus_path": "c.jsonl"})
    assert path == tmp_path / METADATA_FILE
    meta = read_index_metadata(tmp_path)
    assert meta["format"] == "verl_rec.bm25s" and meta["format_version"] == 3 and meta["backend"] == "bm25s"
    assert meta["k1"] == 1.2 and meta["created_at"]
    assert load_index_metadata(tmp_path, "bm25s", 3, "build_it()") == meta
    with pytest.raises(IndexMismatchError, match="format version 3, this code reads version 4; rebuild it with build_it"):
        load_index_metadata(tmp_path, "bm25s", 4, "build_it()")
    with pytest.raises(IndexMismatchError, match="does not describe a verl_rec dense index"):
        load_index_metadata(tmp_path, "dense", 3, "build_it()")
    assert read_index_metadata(tmp_path / "none") is None
    with pytest.raises(IndexNotFoundError, match=f"{tmp_path / 'none'} does not exist; build it with build_it"):
        load_index_metadata(tmp_path / "none", "bm25s", 3, "build_it()")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match=f"has no {METADATA_FILE}"):
        load_index_metadata(tmp_path / "empty", "bm25s", 3, "build_it()")
    (tmp_path / METADATA_FILE).write_text("{not json")
    with pytest.raises(IndexCorruptError, match=f"{tmp_path / METADATA_FILE}: unreadable.*rebuild"):
        read_index_metadata(tmp_path)
    (tmp_path / METADATA_FILE).write_text("[1, 2]")
    with pytest.raises(IndexCorruptError, match="not an object"):
        read_index_metadata(tmp_path)


def test_update_keeps_the_builders_keys(tmp_path):
    write_index_metadata(tmp_path, "dense", 1, {"corpus_path": None, "num_docs": 5})
    meta = update_index_metadata(tmp_path, {"settings": {"kind": "flat"}}, defaults={"backend": "x", "extra": 1})
    assert meta["backend"] == "dense" and meta["extra"] == 1 and meta["num_docs"] == 5
    assert json.loads((tmp_path / METADATA_FILE).read_text()) == meta
    (tmp_path / "bare").mkdir()
    started = update_index_metadata(tmp_path / "bare", {"settings": {}}, defaults={"backend": "lucene"})
    assert started["backend"] == "lucene" and started["created_at"]


def test_settings_checks_compare_as_the_engines_do(tmp_path):
    meta = {"k1": 1.2, "b": 0.75, "lucene_exact": True, "corpus_path": str(tmp_path / "c.jsonl")}
    # float32-equal parameters, the same file by another spelling, None and unrecorded keys all pass
    check_built_with(meta, tmp_path, {"k1": float(np.float32(1.2)), "b": None,
                                      "corpus_path": str(tmp_path / "." / "c.jsonl"), "unrecorded": 3}, "x", "y")
    with pytest.raises(IndexMismatchError, match=r"built with lucene_exact=True but asked lucene_exact=False; fix lucene_exact$"):
        check_built_with(meta, tmp_path, {"lucene_exact": False}, "asked", "fix {key}")
    write_index_metadata(tmp_path, "bm25s", 1, {"k1": 1.2})
    check_index_matches(tmp_path, "bm25s", {"k1": 1.2, "threads": 4})
    with pytest.raises(IndexMismatchError, match="'bm25s' index but the recipe asks for backend 'lucene'"):
        check_index_matches(tmp_path, "lucene", {})
    check_index_matches(tmp_path / "built-elsewhere", "lucene", {"k1": 0.9})  # no metadata: nothing to check


def test_builders_never_overwrite_a_foreign_folder(tmp_path):
    refuse_foreign_folder(tmp_path / "new", "bm25s")
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / BUILD_LOG).write_text("indexer died")
    refuse_foreign_folder(tmp_path / "failed", "lucene")  # a failed build's log alone: retry allowed
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(IndexFolderOccupiedError, match=f"{mine} exists and is not a verl_rec bm25s index"):
        refuse_foreign_folder(mine, "bm25s")
    refuse_foreign_folder(mine, "lucene", is_index=True)  # the engine recognises its own index
    write_index_metadata(mine, "dense", 1, {})
    refuse_foreign_folder(mine, "dense")
    with pytest.raises(IndexFolderOccupiedError, match=f"{mine} holds a dense index; choose another index folder"):
        refuse_foreign_folder(mine, "lucene", is_index=True)
    (mine / METADATA_FILE).write_text("{broken")
    refuse_foreign_folder(mine, "bm25s")  # our file, unreadable: rebuilding is the fix
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(IndexFolderOccupiedError, match="is a file"):
        refuse_foreign_folder(a_file, "bm25s")
