"""ESCI builder on small files in the exact release schema (column names and dtypes as released).

The release's examples parquet has int64 example_id/query_id/small_version/large_version and
string query/product_id/product_locale/esci_label/split; the products parquet is all strings
with nulls in the text columns. The inputs below hold every case the real files have: other
locales (es, jp), S/C/I labels, duplicated judgements and products, large_version-only rows,
products missing from the products file, null text, numeric-looking ASINs (ISBN-10).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from verl_rec.data_preprocess.esci import main
from verl_rec.tasks.record_files import read_records

REPO = Path(__file__).resolve().parents[1]

EXAMPLE_SCHEMA = pa.schema([
    ("example_id", pa.int64()), ("query", pa.string()), ("query_id", pa.int64()), ("product_id", pa.string()),
    ("product_locale", pa.string()), ("esci_label", pa.string()), ("small_version", pa.int64()),
    ("large_version", pa.int64()), ("split", pa.string()),
])
PRODUCT_SCHEMA = pa.schema([(name, pa.string()) for name in (
    "product_id", "product_title", "product_description", "product_bullet_point", "product_brand", "product_color",
    "product_locale")])

#: query_id, query, locale, small, large, split, [(product_id, label), ...]
QUERIES = [
    (1, "wireless game controller", "us", 1, 1, "test", [("B01GAME", "E"), ("B01GAME", "E"), ("B02GAME", "S"), ("B03BABY", "I")]),
    (2, "baby stroller", "us", 1, 1, "test", [("0439708184", "E"), ("B02GAME", "C")]),
    (3, "stapler heavy duty", "us", 1, 1, "test", [("B05OFFI", "E"), ("B06OFFI", "E")]),
    (4, "tent for camping", "us", 1, 1, "test", [("B07SPOR", "E")]),
    (5, "desk lamp", "us", 1, 1, "test", [("B08HOME", "E")]),                      # category not a paper domain
    (6, "missing product", "us", 1, 1, "test", [("B99GONE", "E")]),               # not in the products file
    (10, "gamepad usb", "us", 1, 1, "train", [("B01GAME", "E"), ("B02GAME", "E")]),
    (11, "diaper bag", "us", 1, 1, "train", [("B03BABY", "E")]),
    (12, "ink pen", "us", 1, 1, "train", [("B06OFFI", "E"), ("B05OFFI", "S")]),
    (13, "Wireless Game Controller", "us", 1, 1, "train", [("B02GAME", "E")]),    # same text as test query 1
    (14, "only substitutes", "us", 1, 1, "train", [("B01GAME", "S"), ("B03BABY", "C"), ("B05OFFI", "I")]),
    (15, "large only query", "us", 0, 1, "train", [("B01GAME", "E")]),            # large_version only
    (16, "mando inalambrico", "es", 1, 1, "train", [("B01ES", "E")]),
    (17, "コントローラー", "jp", 1, 1, "test", [("B01JP", "E")]),
    (18, "yoga mat", "us", 1, 1, "train", [("B07SPOR", "E"), ("B09EMPTY", "E")]),  # B09EMPTY has no text
    (19, None, "us", 1, 1, "train", [("B07SPOR", "E")]),                          # null query
    (None, "no query id", "us", 1, 1, "train", [("B07SPOR", "E")]),               # null query_id: ids read as float
]
PRODUCTS = [
    ("B01GAME", "Acme Wireless Controller", "A gamepad for consoles", "bullet", "Acme", "black", "us"),
    ("B01GAME", "Acme Wireless Controller (duplicate row)", None, None, "Acme", "black", "us"),
    ("B02GAME", "USB Gamepad", None, "wired", "Zen", None, "us"),
    ("B03BABY", "Diaper Bag Backpack", "Roomy bag", None, None, None, "us"),
    ("0439708184", "Baby Stroller Lightweight", "Folds in one hand", None, None, None, "us"),
    ("B05OFFI", "Heavy Duty Stapler", "Staples 100 sheets", None, None, None, "us"),
    ("B06OFFI", "Gel Ink Pen", None, None, None, None, "us"),
    ("B07SPOR", "Camping Tent 4 Person", "Waterproof", None, None, None, "us"),
    ("B08HOME", "LED Desk Lamp", "Dimmable", None, None, None, "us"),
    ("B09EMPTY", None, None, "only a bullet point", None, None, "us"),
    ("B01ES", "Mando inalambrico", "para consola", None, None, None, "es"),
    ("B01JP", "コントローラー", None, None, None, None, "jp"),
]
CATEGORIES = {"B01GAME": "Video_Games", "B02GAME": "Video_Games", "B03BABY": "Baby_Products", "0439708184": "Baby_Products",
              "B05OFFI": "Office_Products", "B06OFFI": "Office_Products", "B07SPOR": "Sports_and_Outdoors",
              "B08HOME": "Home_and_Kitchen"}


def write_release(folder: Path, queries=QUERIES, products=PRODUCTS) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rows, example_id = [], 100
    for qid, text, locale, small, large, split, judged in queries:
        for product_id, label in judged:
            rows.append({"example_id": example_id, "query": text, "query_id": qid, "product_id": product_id,
                         "product_locale": locale, "esci_label": label, "small_version": small,
                         "large_version": large, "split": split})
            example_id += 1
    paths = {
        "examples": folder / "shopping_queries_dataset_examples.parquet",
        "products": folder / "shopping_queries_dataset_products.parquet",
        "categories": folder / "product_categories.csv",
    }
    pq.write_table(pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA), paths["examples"])
    pq.write_table(pa.Table.from_pylist([dict(zip(PRODUCT_SCHEMA.names, p)) for p in products], schema=PRODUCT_SCHEMA),
                   paths["products"])
    pd.DataFrame(sorted(CATEGORIES.items()), columns=["product_id", "category"]).to_csv(paths["categories"], index=False)
    return paths


def records_by_id(path: Path) -> dict:
    return {r.record_id: r for r in read_records(path)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = write_release(tmp_path_factory.mktemp("esci-raw"))
    out = tmp_path_factory.mktemp("esci-out")
    assert main(["--examples", str(raw["examples"]), "--products", str(raw["products"]),
                 "--category-map", str(raw["categories"]), "--out", str(out), "--val-size", "1"]) == 0
    return out


def test_test_split_rows_qrels_and_domains(built: Path) -> None:
    test = records_by_id(built / "test.parquet")
    assert sorted(test) == ["esci-1", "esci-2", "esci-3", "esci-4", "esci-5"]  # 6: target not in products; 17: jp
    assert test["esci-1"].qrels == {"B01GAME": 1.0}  # duplicate E counted once, S and I not relevant
    assert test["esci-2"].qrels == {"0439708184": 1.0}  # leading zero kept
    assert test["esci-3"].qrels == {"B05OFFI": 1.0, "B06OFFI": 1.0}
    assert all(r.task == "search" and r.split == "test" for r in test.values())
    assert test["esci-1"].query == "wireless game controller"
    domains = {name: sorted(records_by_id(built / f"test_{name}.parquet")) for name in
               ("Video_Games", "Baby_Products", "Office_Products", "Sports_and_Outdoors", "other")}
    assert domains == {"Video_Games": ["esci-1"], "Baby_Products": ["esci-2"], "Office_Products": ["esci-3"],
                       "Sports_and_Outdoors": ["esci-4"], "other": ["esci-5"]}
    assert test["esci-2"].data_source == "esci/Baby_Products"


def test_train_val_disjoint_from_test(built: Path) -> None:
    train, val, test = (records_by_id(built / f"{s}.parquet") for s in ("train", "val", "test"))
    assert sorted([*train, *val]) == ["esci-10", "esci-11", "esci-12", "esci-18"]  # 13: its text is a test query's
    assert len(val) == 1 and all(r.split == "val" for r in val.values())
    assert not (set(train) & set(val)) and not (set(train) | set(val)) & set(test)
    test_texts = {r.query.lower() for r in test.values()}
    assert not {r.query.lower() for r in [*train.values(), *val.values()]} & test_texts
    everything = {**train, **val}
    assert everything["esci-12"].qrels == {"B06OFFI": 1.0}
    assert everything["esci-18"].qrels == {"B07SPOR": 1.0}  # B09EMPTY has no title/description: not in corpus


def test_corpus_and_manifest(built: Path) -> None:
    corpus = [json.loads(line) for line in (built / "corpus.jsonl").read_text().splitlines()]
    ids = [d["id"] for d in corpus]
    assert sorted(ids) == sorted(["B01GAME", "B02GAME", "B03BABY", "0439708184", "B05OFFI", "B06OFFI", "B07SPOR", "B08HOME"])
    assert next(d for d in corpus if d["id"] == "B01GAME")["contents"] == "Acme Wireless Controller\nA gamepad for consoles"
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["inputs"] == {"example_rows": 27, "product_rows": 12, "queries": 12}
    assert manifest["dropped"] == {
        "example_other_locale": 2, "example_not_in_small_version": 1, "example_empty_query": 1,
        "example_missing_query_or_product_id": 1,
        "example_duplicate_judgement": 1, "product_other_locale": 2, "product_duplicate_id": 1,
        "product_no_text_in_chosen_fields": 1, "target_not_in_corpus": 2, "query_without_relevant_product": 2,
        "train_query_text_also_in_test": 1,
    }
    assert manifest["outputs"]["train.parquet"] + manifest["outputs"]["val.parquet"] == 4
    assert manifest["outputs"]["test.parquet"] == 5


def test_graded_gains_and_large_version(tmp_path: Path) -> None:
    raw = write_release(tmp_path / "raw")
    out = tmp_path / "out"
    assert main(["--examples", str(raw["examples"]), "--products", str(raw["products"]), "--out", str(out),
                 "--graded", "--version", "large", "--val-size", "0"]) == 0
    test = records_by_id(out / "test.parquet")
    assert test["esci-1"].qrels == {"B01GAME": 3.0, "B02GAME": 2.0}  # I has gain 0
    assert test["esci-2"].qrels == {"0439708184": 3.0, "B02GAME": 1.0}
    train = records_by_id(out / "train.parquet")
    assert "esci-15" in train  # large_version-only query kept in the large version
    assert "esci-14" in train and train["esci-14"].qrels == {"B01GAME": 2.0, "B03BABY": 1.0}
    assert not (out / "test_Video_Games.parquet").exists()  # no category map: no domain files
    assert test["esci-1"].data_source == "esci"


def _fails(argv: list[str], capsys: pytest.CaptureFixture, *needles: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


def test_bad_inputs_name_file_and_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = write_release(tmp_path / "raw")
    out = str(tmp_path / "out")
    missing = tmp_path / "nope.parquet"
    _fails(["--examples", str(missing), "--products", str(raw["products"]), "--out", out], capsys, str(missing), "does not exist")

    examples = pq.read_table(raw["examples"]).to_pandas()
    no_label = tmp_path / "no_label.parquet"
    examples.drop(columns=["esci_label"]).to_parquet(no_label)
    _fails(["--examples", str(no_label), "--products", str(raw["products"]), "--out", out], capsys, str(no_label), "esci_label")

    text_ids = tmp_path / "text_ids.parquet"
    examples.assign(query_id=examples["query_id"].astype(str) + "x").to_parquet(text_ids)
    _fails(["--examples", str(text_ids), "--products", str(raw["products"]), "--out", out], capsys, str(text_ids), "query_id")

    products = pq.read_table(raw["products"]).to_pandas()
    no_title = tmp_path / "no_title.parquet"
    products.drop(columns=["product_title"]).to_parquet(no_title)
    _fails(["--examples", str(raw["examples"]), "--products", str(no_title), "--out", out], capsys, str(no_title), "product_title")


def test_cli_entry_point_and_file_url(tmp_path: Path) -> None:
    """``python -m verl_rec.data_preprocess.esci`` runs as a command; inputs may be file:// URLs."""
    raw = write_release(tmp_path / "raw")
    env_cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "verl_rec.data_preprocess.esci", "--examples", raw["examples"].as_uri(),
         "--products", str(raw["products"]), "--out", str(tmp_path / "out"), "--val-size", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "VERL_REC_CACHE": str(env_cache)},
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and (tmp_path / "out" / "test.parquet").is_file()
    assert list(env_cache.rglob("shopping_queries_dataset_examples.parquet"))


def write_sampled_corpus(path: Path, ids: list[str]) -> Path:
    """A sampled corpus JSONL (the paper's kind): one {"id", "contents"} per product."""
    with path.open("w") as handle:
        for doc_id in ids:
            handle.write(json.dumps({"id": doc_id, "contents": f"product {doc_id}"}) + "\n")
    return path


def test_released_split_on_the_sampled_corpus(tmp_path: Path) -> None:
    """--corpus-jsonl keeps the released training set: queries in order of first appearance, val =
    the first --val-size, train = the rest; a train query with a test query's text is kept (noted);
    with a category map, train targets without a category are dropped."""
    reordered = [q for q in QUERIES if q[0] == 18] + [q for q in QUERIES if q[0] != 18]  # 18 appears first
    raw = write_release(tmp_path / "raw", queries=reordered)
    corpus = write_sampled_corpus(tmp_path / "sampled.jsonl", [*CATEGORIES, "B09EMPTY"])
    out = tmp_path / "out"
    assert main(["--examples", str(raw["examples"]), "--corpus-jsonl", str(corpus), "--category-map",
                 str(raw["categories"]), "--out", str(out), "--val-size", "2"]) == 0
    val = read_records(out / "val.parquet")
    train = read_records(out / "train.parquet")
    assert [r.record_id for r in val] == ["esci-18", "esci-10"]  # first appearance, not sorted ids nor a sample
    assert [r.record_id for r in train] == ["esci-11", "esci-12", "esci-13"]  # 13 shares a test query's text: kept
    assert val[0].qrels == {"B07SPOR": 1.0}  # B09EMPTY is in the corpus but has no category
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["split_rule"] == "released"
    assert manifest["notes"] == {"train_queries_whose_text_is_a_test_query_kept": 1}
    assert manifest["dropped"]["train_target_without_category"] == 1
    assert "train_query_text_also_in_test" not in manifest["dropped"]
    # the same corpus with --split disjoint: the query that shares a test query's text is dropped
    assert main(["--examples", str(raw["examples"]), "--corpus-jsonl", str(corpus), "--out", str(tmp_path / "d"),
                 "--val-size", "2", "--split", "disjoint"]) == 0
    kept = {r.record_id for name in ("train", "val") for r in read_records(tmp_path / "d" / f"{name}.parquet")}
    assert kept == {"esci-10", "esci-11", "esci-12", "esci-18"}


def test_transfer_trains_on_chosen_domains_and_validates_on_another(tmp_path: Path) -> None:
    raw = write_release(tmp_path / "raw")
    out = tmp_path / "out"
    assert main(["--examples", str(raw["examples"]), "--products", str(raw["products"]), "--category-map",
                 str(raw["categories"]), "--out", str(out), "--val-size", "5",
                 "--train-domains", "Video_Games,Office_Products", "--val-domains", "Baby_Products"]) == 0
    train, val = read_records(out / "train.parquet"), read_records(out / "val.parquet")
    assert sorted(r.record_id for r in train) == ["esci-10", "esci-12"]
    assert {r.data_source for r in train} == {"esci/Video_Games", "esci/Office_Products"}
    assert [(r.record_id, r.data_source) for r in val] == [("esci-11", "esci/Baby_Products")]
    # every test domain is still written, so that an evaluation reports each of them
    assert {p.name for p in out.glob("test_*.parquet")} == {
        "test_Video_Games.parquet", "test_Baby_Products.parquet", "test_Office_Products.parquet",
        "test_Sports_and_Outdoors.parquet", "test_other.parquet"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dropped"]["train_query_outside_train_domains"] == 2  # 11 (Baby: val) and 18 (Sports)
    assert manifest["settings"]["train_domains"] == ["Video_Games", "Office_Products"]


def test_transfer_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = write_release(tmp_path / "raw")
    base = ["--examples", str(raw["examples"]), "--products", str(raw["products"]), "--out", str(tmp_path / "o")]
    _fails([*base, "--train-domains", "Video_Games"], capsys, "--category-map")
    _fails([*base, "--category-map", str(raw["categories"]), "--train-domains", "Toys"], capsys, "unknown domain", "Toys")
    _fails([*base, "--category-map", str(raw["categories"]), "--val-domains", "Video_Games"], capsys, "--train-domains")


def test_fewer_train_queries_than_val_size_fails_instead_of_an_empty_train(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    raw = write_release(tmp_path / "raw")
    out = tmp_path / "out"
    _fails(["--examples", str(raw["examples"]), "--products", str(raw["products"]), "--out", str(out),
            "--val-size", "4"], capsys, "no training query left", "4 train-split queries", "--val-size 4")
    assert not (out / "train.parquet").exists()
    _fails(["--examples", str(raw["examples"]), "--products", str(raw["products"]), "--category-map",
            str(raw["categories"]), "--out", str(out), "--train-domains", "Sports_and_Outdoors", "--val-size", "1"],
           capsys, "no training query left", "Sports_and_Outdoors")
    assert main(["--examples", str(raw["examples"]), "--products", str(raw["products"]), "--out", str(out),
                 "--val-size", "3"]) == 0
    assert len(read_records(out / "train.parquet")) == 1
