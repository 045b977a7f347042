"""Sequential-recommendation builder on small Amazon Reviews 2023 files in the release schema.

Benchmark CSVs (0core/timestamp_w_his): user_id, parent_asin, rating (float), timestamp (int,
ms), history (space-separated parent_asins, empty for a first purchase). Metadata JSONL
(gzipped, as the McAuley-lab hosting serves it): main_category, title, average_rating,
rating_number, features (list), description (list), price (null or number), images, videos,
store, categories, details (object), parent_asin, bought_together.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers_releases import seqrec_meta, write_seqrec_release
from verl_rec.data_preprocess.seqrec import main
from verl_rec.tasks.record_files import read_records

CATEGORY = "All_Beauty"


meta = seqrec_meta

METADATA = [
    meta("A1", "Rose Face Serum", ["hydrating", "30 ml"], ["A light serum."]),
    meta("A2", "Lavender Hand Cream"),
    meta("A3", "Argan Hair Oil", ["for dry hair"]),
    meta("A4", "Clay Face Mask"),
    meta("A5", "Vitamin C Toner"),
    meta("A6", "Bamboo Hair Brush"),
    meta("A7", "Silk Sleep Mask"),
    meta("A8", "Nail Polish Set"),
    meta("0123456789", "Mineral Sunscreen SPF 30"),
    meta("N1", None, ["untitled item with features"]),
    meta("E1", "", [], []),
    meta("A1", "Duplicate line of A1"),
]
TRAIN = [
    ("U1", "A2", 5.0, 1600000000000, "A1"),
    ("U1", "A3", 4.0, 1600000001000, "A1 A4 A2"),
    ("U2", "A4", 3.0, 1600000002000, None),        # first purchase: no history
    ("U3", "A5", 5.0, 1600000003000, "X9 A4 N1"),  # X9 has no metadata, N1 no title
    ("U4", "Z9", 5.0, 1600000004000, "A1"),        # target without metadata
    ("U5", "A6", 5.0, 1600000005000, "A7"),        # beyond --train-rows 5
]
VALID = [
    ("U1", "A4", 5.0, 1600000010000, "A3"),
    ("U2", "A2", 4.0, 1600000011000, "X9"),
]
TEST = [
    ("U1", "A3", 5.0, 1600000020000, "A1 A2"),     # transductive
    ("U2", "A5", 5.0, 1600000021000, "A1 A4"),     # transductive
    ("U3", "A6", 4.0, 1600000022000, "A1"),        # inductive (A6 only after the train cut)
    ("U4", "A7", 3.0, 1600000023000, "A2 A6"),     # inductive
    ("U5", "A1", 5.0, 1600000024000, "A6"),        # seen target, unseen history item: neither
    ("U6", "0123456789", 5.0, 1600000025000, "A1"),  # inductive; all-digit ASIN keeps its zero
    ("U7", "A8", 5.0, 1600000026000, None),        # no history
    ("U8", "Z9", 5.0, 1600000027000, "A1"),        # target without metadata
]


def write_release(folder: Path) -> Path:
    return write_seqrec_release(folder, CATEGORY, {"train": TRAIN, "valid": VALID, "test": TEST}, METADATA)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = write_release(tmp_path_factory.mktemp("seqrec-raw"))
    out = tmp_path_factory.mktemp("seqrec-out")
    assert main(["--category", CATEGORY, "--dir", str(raw), "--out", str(out), "--history-len", "2",
                 "--train-rows", "5", "--max-transductive", "1", "--max-inductive", "0", "--val-size", "0"]) == 0
    return out


def by_id(path: Path) -> dict:
    return {r.record_id: r for r in read_records(path)}


def test_train_records(built: Path) -> None:
    train = by_id(built / "train.parquet")
    assert sorted(train) == ["All_Beauty-train-0", "All_Beauty-train-1", "All_Beauty-train-3"]
    assert train["All_Beauty-train-0"].history == ("Rose Face Serum",)
    assert train["All_Beauty-train-1"].history == ("Clay Face Mask", "Lavender Hand Cream")  # last 2, oldest first
    assert train["All_Beauty-train-3"].history == ("Clay Face Mask",)  # X9 and N1 skipped
    assert train["All_Beauty-train-1"].qrels == {"A3": 1.0}
    assert all(r.task == "seqrec" and r.query == "" and r.data_source == "seqrec_All_Beauty/train" for r in train.values())


def test_transductive_and_inductive(built: Path) -> None:
    transductive = by_id(built / "test_transductive.parquet")
    inductive = by_id(built / "test_inductive.parquet")
    assert len(transductive) == 1 and set(transductive) <= {"All_Beauty-test-0", "All_Beauty-test-1"}
    assert sorted(inductive) == ["All_Beauty-test-2", "All_Beauty-test-3", "All_Beauty-test-5"]
    assert inductive["All_Beauty-test-5"].qrels == {"0123456789": 1.0}
    assert inductive["All_Beauty-test-3"].history == ("Lavender Hand Cream", "Bamboo Hair Brush")
    assert {r.data_source for r in inductive.values()} == {"seqrec_All_Beauty/inductive"}
    assert {r.data_source for r in transductive.values()} == {"seqrec_All_Beauty/transductive"}
    val = by_id(built / "val.parquet")
    assert sorted(val) == ["All_Beauty-val-0"] and val["All_Beauty-val-0"].history == ("Argan Hair Oil",)
    # validation is split into the same two settings (recipes validate on these, never on test)
    val_t, val_i = by_id(built / "val_transductive.parquet"), by_id(built / "val_inductive.parquet")
    assert set(val_t) | set(val_i) == set(val) and not set(val_t) & set(val_i)
    assert {r.data_source for r in val_i.values()} <= {"seqrec_All_Beauty/val/inductive"}
    assert {r.data_source for r in val_t.values()} <= {"seqrec_All_Beauty/val/transductive"}


def test_corpus_and_manifest(built: Path) -> None:
    corpus = {d["id"]: d["contents"] for d in map(json.loads, (built / "corpus.jsonl").read_text().splitlines())}
    assert sorted(corpus) == sorted(["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "0123456789", "N1"])
    assert corpus["A1"] == "Rose Face Serum\nhydrating 30 ml\nA light serum."
    assert corpus["N1"] == "untitled item with features"
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["inputs"] == {"meta_rows": 12, "train_rows": 5, "valid_rows": 2, "test_rows": 8}
    assert manifest["dropped"] == {
        "item_duplicate_parent_asin": 1, "item_no_text": 1,
        "train_target_without_metadata": 1, "train_no_history_item_with_title": 1, "train_history_items_without_title": 2,
        "val_no_history_item_with_title": 1, "val_history_items_without_title": 1,
        "test_target_without_metadata": 1, "test_no_history_item_with_title": 1,
        "test_seen_target_with_unseen_history_item": 1, "test_transductive_over_cap": 1,
    }
    assert manifest["outputs"]["items_seen_in_train"] == 5  # A1..A5
    assert manifest["outputs"]["test_inductive.parquet"] == 3


def test_bad_inputs_name_file_and_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = write_release(tmp_path / "raw")
    base = ["--category", CATEGORY, "--dir", str(raw), "--out", str(tmp_path / "out")]
    train = raw / f"{CATEGORY}.train.csv"
    frame = pd.read_csv(train)
    no_history = tmp_path / "no_history.csv"
    frame.drop(columns=["history"]).to_csv(no_history, index=False)
    assert main([*base, "--train", str(no_history)]) == 2
    err = capsys.readouterr().err
    assert str(no_history) in err and "history" in err

    text_time = tmp_path / "text_time.csv"
    frame.assign(timestamp="2020-01-01").to_csv(text_time, index=False)
    assert main([*base, "--test", str(text_time)]) == 2
    err = capsys.readouterr().err
    assert str(text_time) in err and "'timestamp'" in err

    bad_meta = tmp_path / "bad_meta.jsonl"
    bad_meta.write_text(json.dumps(METADATA[0]) + "\n" + json.dumps({**METADATA[1], "title": 7}) + "\n")
    assert main([*base, "--meta", str(bad_meta)]) == 2
    err = capsys.readouterr().err
    assert f"{bad_meta}:2" in err and "'title'" in err

    assert main(["--category", "Nope", "--dir", str(raw), "--out", str(tmp_path / "out")]) == 2
    assert "meta_Nope.jsonl does not exist" in capsys.readouterr().err


def test_no_train_record_fails_instead_of_an_empty_train(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = write_release(tmp_path / "raw")
    train = raw / f"{CATEGORY}.train.csv"
    unknown = tmp_path / "unknown_items.csv"
    pd.read_csv(train).assign(parent_asin="NOPE", history="NOPE2").to_csv(unknown, index=False)
    out = tmp_path / "out"
    assert main(["--category", CATEGORY, "--dir", str(raw), "--out", str(out), "--train", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "no training record left" in err and str(unknown) in err
    assert not (out / "train.parquet").exists()
