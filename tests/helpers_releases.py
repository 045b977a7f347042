"""Writers of raw release files in each dataset's published schema, shared by the builder tests
(tests/test_data_*.py, hand-made rows with every edge case) and the recipe trainer tests
(rows made from the synthetic catalog, so that BM25 has something to find)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

#: Amazon-C4 test.csv columns, as released
C4_QUERY_COLUMNS = ["qid", "query", "item_id", "user_id", "ori_rating", "ori_review"]
#: Amazon Reviews 2023 benchmark CSV columns (0core/timestamp_w_his)
SEQREC_COLUMNS = ["user_id", "parent_asin", "rating", "timestamp", "history"]


def write_c4_release(folder: Path, queries: Sequence[tuple], items: Iterable[dict]) -> tuple[Path, Path]:
    """``test.csv`` (rows of :data:`C4_QUERY_COLUMNS`) and ``sampled_item_metadata_1M.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(list(queries), columns=C4_QUERY_COLUMNS).to_csv(folder / "test.csv", index=False)
    with (folder / "sampled_item_metadata_1M.jsonl").open("w") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")
    return folder / "test.csv", folder / "sampled_item_metadata_1M.jsonl"


def seqrec_meta(asin: str, title, features=(), description=()) -> dict:
    """One line of ``meta_<Category>.jsonl`` with every released field."""
    return {"main_category": "All Beauty", "title": title, "average_rating": 4.5, "rating_number": 12,
            "features": list(features), "description": list(description), "price": None,
            "images": [{"thumb": "t.jpg", "large": "l.jpg", "variant": "MAIN", "hi_res": None}], "videos": [],
            "store": "Acme", "categories": [], "details": {"Brand": "Acme"}, "parent_asin": asin,
            "bought_together": None}


def write_seqrec_release(folder: Path, category: str, splits: dict[str, Sequence[tuple]], metadata: Iterable[dict]) -> Path:
    """``<Category>.{train,valid,test}.csv`` (rows of :data:`SEQREC_COLUMNS`) and the gzipped metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        pd.DataFrame(list(rows), columns=SEQREC_COLUMNS).to_csv(folder / f"{category}.{split}.csv", index=False)
    with gzip.open(folder / f"meta_{category}.jsonl.gz", "wt", encoding="utf-8") as handle:
        for item in metadata:
            handle.write(json.dumps(item) + "\n")
    return folder
