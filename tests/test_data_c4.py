"""Amazon-C4 builder on small files in the release schema, and input resolution (paths, file:// URLs).

test.csv as released: qid (int), query, item_id, user_id (strings), ori_rating (int), ori_review
(string, may be empty). sampled_item_metadata_1M.jsonl: {"item_id", "category", "metadata"}.
The inputs hold nulls, a repeated qid, a target missing from the pool, duplicate pool items,
an all-digit item id (leading zero), and items of non-test categories.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers_releases import write_c4_release
from verl_rec.builders.download import cached_path, resolve_input
from verl_rec.data_preprocess.c4 import main
from verl_rec.tasks.record_files import read_records

ITEMS = [
    {"item_id": "G1", "category": "Games", "metadata": "Wireless controller for consoles. Product Description Long battery."},
    {"item_id": "G2", "category": "Games", "metadata": "Racing wheel with pedals"},
    {"item_id": "0123456789", "category": "Baby", "metadata": "Bath toy  for toddlers,\n suction cups"},
    {"item_id": "O1", "category": "Office", "metadata": "Heavy duty stapler"},
    {"item_id": "S1", "category": "Sports", "metadata": "Yoga mat, non slip"},
    {"item_id": "C1", "category": "Care", "metadata": "Sunscreen mousse SPF 50"},
    {"item_id": "C2", "category": "Care", "metadata": "Face wash"},
    {"item_id": "H1", "category": "Home", "metadata": "Throw pillow covers"},
    {"item_id": "H2", "category": "Home", "metadata": "Cotton bath towels"},
    {"item_id": "H3", "category": "Home", "metadata": "Knife block"},
    {"item_id": "H1", "category": "Home", "metadata": "duplicate of H1"},
    {"item_id": "E1", "category": "Home", "metadata": None},
    {"item_id": "E2", "category": None, "metadata": "   "},
]
QUERIES = [
    (0, "I want to play racing games with my friends on the couch without cables.", "G1", "U0", 5, "Great pad"),
    (1, "My kid loves bath time and needs something fun that sticks to the tub.", "0123456789", "U1", 4, ""),
    (2, "I staple thick reports at work every day.", "O1", "U2", 5, "Works"),
    (3, "I need a mat for my morning yoga that does not slide.", "S1", "U3", 3, None),
    (4, "Something to protect my kids from the sun at the beach.", "C1", "U4", 5, "Nice"),
    (5, "My face feels oily after the gym.", "C2", "U5", 4, "ok"),
    (6, "Our couch looks dull and needs some color.", "H1", "U6", 5, "Pretty"),
    (7, "Soft towels that dry fast after a shower.", "H2", "U7", 2, "Thin"),
    (8, "A safe place to keep my kitchen knives.", "H3", "U8", 5, "Solid"),
    (9, "I staple thick reports at work every day.", "H3", "U9", 1, "same text as a test query"),
    (10, None, "H2", "U10", 5, "null query"),
    (11, "An item the pool does not have.", "ZZZ", "U11", 5, "missing target"),
    (2, "repeated qid", "O1", "U12", 5, "duplicate qid"),
    (12, "Item with no text in the pool.", "E1", "U13", 5, "empty metadata"),
]


def write_release(folder: Path) -> tuple[Path, Path]:
    return write_c4_release(folder, QUERIES, ITEMS)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    queries, items = write_release(tmp_path_factory.mktemp("c4-raw"))
    out = tmp_path_factory.mktemp("c4-out")
    assert main(["--queries", str(queries), "--items", str(items), "--out", str(out), "--val-size", "2"]) == 0
    return out


def ids(path: Path) -> list[str]:
    return sorted(r.record_id for r in read_records(path))


def test_paper_split_by_domain(built: Path) -> None:
    assert ids(built / "test_Games.parquet") == ["c4-0"]
    assert ids(built / "test_Baby.parquet") == ["c4-1"]
    assert ids(built / "test_Office.parquet") == ["c4-2"]
    assert ids(built / "test_Sports.parquet") == ["c4-3"]
    assert ids(built / "test.parquet") == ["c4-0", "c4-1", "c4-2", "c4-3"]
    baby = read_records(built / "test_Baby.parquet")[0]
    assert baby.qrels == {"0123456789": 1.0} and baby.data_source == "c4/Baby" and baby.task == "search"
    assert baby.query == "My kid loves bath time and needs something fun that sticks to the tub."
    train, val = ids(built / "train.parquet"), ids(built / "val.parquet")
    assert len(val) == 2 and not set(train) & set(val)
    assert sorted(train + val) == ["c4-4", "c4-5", "c4-6", "c4-7", "c4-8"]  # 9: text of test query 2
    assert all(len(r.qrels) == 1 for r in read_records(built / "train.parquet"))


def test_corpus_and_manifest(built: Path) -> None:
    corpus = [json.loads(line) for line in (built / "corpus.jsonl").read_text().splitlines()]
    by_id = {d["id"]: d["contents"] for d in corpus}
    assert sorted(by_id) == sorted(["G1", "G2", "0123456789", "O1", "S1", "C1", "C2", "H1", "H2", "H3"])
    assert by_id["0123456789"] == "Bath toy for toddlers, suction cups"  # whitespace collapsed
    assert by_id["H1"] == "Throw pillow covers"  # first copy of a duplicated item
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["inputs"] == {"query_rows": 14, "item_rows": 13}
    assert manifest["dropped"] == {"query_empty": 1, "query_duplicate_qid": 1, "item_duplicate_id": 1,
                                   "item_empty_metadata": 2, "target_not_in_item_pool": 2,
                                   "train_query_text_also_in_test": 1}
    assert manifest["outputs"] == {"corpus_docs": 10, "train.parquet": 3, "val.parquet": 2, "test.parquet": 4,
                                   "test_Games.parquet": 1, "test_Baby.parquet": 1, "test_Office.parquet": 1,
                                   "test_Sports.parquet": 1}


def test_configurable_domains(tmp_path: Path) -> None:
    queries, items = write_release(tmp_path / "raw")
    out = tmp_path / "out"
    assert main(["--queries", str(queries), "--items", str(items), "--out", str(out), "--val-size", "0",
                 "--domain", "Beauty=Care", "--domain", "Living=Home|Office"]) == 0
    assert ids(out / "test_Beauty.parquet") == ["c4-4", "c4-5"]
    assert ids(out / "test_Living.parquet") == ["c4-2", "c4-6", "c4-7", "c4-8", "c4-9"]
    assert ids(out / "train.parquet") == ["c4-0", "c4-1", "c4-3"]
    assert not (out / "test_Games.parquet").exists()


def test_bad_inputs_name_file_and_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    queries, items = write_release(tmp_path / "raw")
    out = str(tmp_path / "out")
    frame = pd.read_csv(queries)
    no_item = tmp_path / "no_item.csv"
    frame.drop(columns=["item_id"]).to_csv(no_item, index=False)
    assert main(["--queries", str(no_item), "--items", str(items), "--out", out]) == 2
    err = capsys.readouterr().err
    assert str(no_item) in err and "item_id" in err

    text_qid = tmp_path / "text_qid.csv"
    frame.assign(qid="q" + frame["qid"].astype(str)).to_csv(text_qid, index=False)
    assert main(["--queries", str(text_qid), "--items", str(items), "--out", out]) == 2
    err = capsys.readouterr().err
    assert str(text_qid) in err and "'qid'" in err

    bad_items = tmp_path / "bad_items.jsonl"
    bad_items.write_text(json.dumps(ITEMS[0]) + "\n" + json.dumps({"item_id": 42, "category": "Games", "metadata": "x"}) + "\n")
    assert main(["--queries", str(queries), "--items", str(bad_items), "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"{bad_items}:2" in err and "'item_id'" in err

    other_schema = tmp_path / "other_schema.jsonl"
    other_schema.write_text(json.dumps({"item_id": "G1", "category": "Games", "text": "x"}) + "\n")
    assert main(["--queries", str(queries), "--items", str(other_schema), "--out", out]) == 2
    err = capsys.readouterr().err
    assert str(other_schema) in err and "metadata" in err

    assert main(["--queries", str(queries), "--items", str(tmp_path / "missing.jsonl"), "--out", out]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err


def test_resolve_input_local_and_file_url(tmp_path: Path) -> None:
    queries, items = write_release(tmp_path / "raw")
    assert resolve_input(str(queries)) == queries  # a local path is used in place
    cache = tmp_path / "cache"
    fetched = resolve_input(queries.as_uri(), cache_dir=cache, progress=False)
    assert fetched == cached_path(queries.as_uri(), cache) and fetched.read_bytes() == queries.read_bytes()
    assert fetched.name == "test.csv" and not list(cache.rglob("*.part"))
    stamp = fetched.stat().st_mtime_ns
    queries.unlink()  # a second call uses the cache, not the source
    assert resolve_input(queries.as_uri(), cache_dir=cache) == fetched and fetched.stat().st_mtime_ns == stamp

    out = tmp_path / "out"
    assert main(["--queries", fetched.as_uri(), "--items", items.as_uri(), "--out", str(out),
                 "--cache-dir", str(cache), "--val-size", "0"]) == 0
    assert ids(out / "test.parquet") == ["c4-0", "c4-1", "c4-2", "c4-3"]


def test_resolve_input_bad_url_names_it(tmp_path: Path) -> None:
    from verl_rec.errors import InputError

    url = (tmp_path / "absent.csv").as_uri()
    with pytest.raises(InputError, match="absent.csv"):
        resolve_input(url, cache_dir=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").rglob("*.part"))  # no half-written file left behind


def test_fewer_train_queries_than_val_size_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    queries, items = write_release(tmp_path / "raw")
    out = tmp_path / "out"
    assert main(["--queries", str(queries), "--items", str(items), "--out", str(out), "--val-size", "1000"]) == 2
    err = capsys.readouterr().err
    assert "no training query left" in err and "--val-size 1000" in err
    assert not (out / "train.parquet").exists()
