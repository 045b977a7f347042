"""Amazon-C4 (complex, review-style queries) -> verl-rec task records, corpus and manifest.

Inputs, as released by the McAuley lab (Hugging Face dataset ``McAuley-Lab/Amazon-C4``):

* ``test.csv``: qid, query, item_id, user_id, ori_rating, ori_review (21,223 rows; one
  target item per query).
* ``sampled_item_metadata_1M.jsonl``: one ``{"item_id", "category", "metadata"}`` per line
  (1,058,417 items; ``metadata`` is the item's text, ``category`` a short name such as
  ``Games``).

The paper's split: the queries whose target item belongs to one of four categories are the
test set, one file per domain (Games 150, Baby 247, Office 577, Sports 748 on the full data);
every other query goes to train, minus a seeded validation sample (1,000). The domain of a
query is the category of its target, mapped through ``domains`` (domain name -> item
categories), so other names or category groupings are a command-line option. Train/val
queries whose text equals a test query are dropped (and counted): val and test stay disjoint.
The corpus is the whole item pool (``id`` = item_id, ``contents`` = metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from verl_rec.builders.download import resolve_input
from verl_rec.builders.io import clean_text, iter_jsonl, read_table, require_type
from verl_rec.builders.item_corpus import write_unique_items
from verl_rec.builders.manifest import Manifest
from verl_rec.errors import InputError
from verl_rec.tasks.record_files import write_records
from verl_rec.tasks.records import TaskRecord

QUERY_COLUMNS = ("qid", "query", "item_id", "user_id", "ori_rating", "ori_review")
USED_QUERY_COLUMNS = ("qid", "query", "item_id")
PAPER_DOMAINS: dict[str, tuple[str, ...]] = {
    "Games": ("Games",), "Baby": ("Baby",), "Office": ("Office",), "Sports": ("Sports",),
}


@dataclass
class C4Options:
    domains: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(PAPER_DOMAINS))
    val_size: int = 1000
    seed: int = 0
    source_name: str = "c4"


def parse_domains(specs: list[str]) -> dict[str, tuple[str, ...]]:
    """``["Games=Games", "Baby=Baby_Products|Baby"]`` -> ``{"Games": ("Games",), ...}``; a bare name maps to itself."""
    domains: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name, _, categories = spec.partition("=")
        name = name.strip()
        cats = tuple(c.strip() for c in (categories or name).split("|") if c.strip())
        if not name or not cats:
            raise InputError(f"--domain {spec!r}: expected NAME or NAME=CATEGORY[|CATEGORY...]")
        domains[name] = cats
    return domains


def load_queries(path: Path, manifest: Manifest) -> pd.DataFrame:
    """test.csv with ids kept as text; rows without id/target/query, or repeated qids, are counted out."""
    frame = read_table(path, USED_QUERY_COLUMNS, "Amazon-C4 queries",
                       dtype={"query": str, "item_id": str, "user_id": str, "ori_review": str})
    require_type(frame, path, "qid", "integer")
    for column in ("query", "item_id"):
        require_type(frame, path, column, "string")
    manifest.inputs["query_rows"] = len(frame)
    missing = frame["qid"].isna() | frame["item_id"].isna() | (frame["item_id"].astype(str).str.strip() == "")
    manifest.drop("query_missing_qid_or_item_id", int(missing.sum()))
    frame = frame[~missing]
    empty = frame["query"].isna() | (frame["query"].astype(str).str.strip() == "")
    manifest.drop("query_empty", int(empty.sum()))
    frame = frame[~empty]
    dup = frame.duplicated(subset=["qid"], keep="first")
    manifest.drop("query_duplicate_qid", int(dup.sum()))
    frame = frame[~dup]
    return frame.assign(qid=frame["qid"].astype("int64"), item_id=frame["item_id"].str.strip())


def write_item_corpus(path: Path, out: Path, wanted: set[str], manifest: Manifest) -> tuple[set[str], dict[str, str]]:
    """Stream the item pool into ``corpus.jsonl``; return the ids written and the categories of ``wanted`` ids."""
    categories: dict[str, str] = {}

    def keep_category(item_id: str, item: Mapping[str, Any]) -> None:
        if item_id in wanted:
            categories[item_id] = str(item.get("category") or "")

    lines = iter_jsonl(path, "Amazon-C4 item pool", required={"item_id": "string"},
                       optional={"category": "string", "metadata": "string"})
    ids, counts = write_unique_items((item for _, item in tqdm(lines, desc="item pool", unit="item", mininterval=2)),
                                     out, "item_id", lambda item: clean_text(item.get("metadata")), keep_category)
    manifest.inputs["item_rows"] = counts.rows
    manifest.drop("item_duplicate_id", counts.duplicates)
    manifest.drop("item_empty_metadata", counts.empty)
    return ids, {item_id: category for item_id, category in categories.items() if item_id in ids}


def domain_of(category: str, domains: Mapping[str, tuple[str, ...]]) -> str | None:
    for name, cats in domains.items():
        if category in cats:
            return name
    return None


def build_c4(queries_path: str | Path, items_path: str | Path, out_dir: str | Path,
             options: C4Options = C4Options(), cache_dir: str | Path | None = None) -> Manifest:
    """Write ``train/val/test[_<domain>].parquet``, ``corpus.jsonl`` and ``manifest.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("c4", settings={**options.__dict__, "queries": str(queries_path), "items": str(items_path)})
    queries = load_queries(resolve_input(queries_path, cache_dir), manifest)
    corpus_ids, categories = write_item_corpus(resolve_input(items_path, cache_dir), out / "corpus.jsonl",
                                               set(queries["item_id"]), manifest)
    manifest.outputs["corpus_docs"] = len(corpus_ids)
    in_corpus = queries["item_id"].isin(corpus_ids)
    manifest.drop("target_not_in_item_pool", int((~in_corpus).sum()))
    queries = queries[in_corpus]

    test: dict[str, list[TaskRecord]] = {name: [] for name in options.domains}
    pool: list[TaskRecord] = []
    other = f"{options.source_name}/other"
    for row in queries.itertuples(index=False):
        domain = domain_of(categories.get(row.item_id, ""), options.domains)
        split = "test" if domain else "train"
        record = TaskRecord(f"c4-{row.qid}", f"{options.source_name}/{domain}" if domain else other, "search",
                            {row.item_id: 1.0}, query=" ".join(str(row.query).split()), split=split)
        (test[domain] if domain else pool).append(record)

    test_texts = {r.query.lower() for rows in test.values() for r in rows}
    train = [r for r in pool if r.query.lower() not in test_texts]
    manifest.drop("train_query_text_also_in_test", len(pool) - len(train))
    if len(train) <= options.val_size:
        raise InputError(f"no training query left: {len(train)} non-test queries remain after filtering and --val-size "
                         f"{options.val_size} would take them all for validation; lower --val-size (the dropped counts "
                         "say what was filtered)")
    rng = np.random.default_rng(options.seed)
    val_index = set(rng.choice(len(train), size=min(options.val_size, len(train)), replace=False).tolist()) if train else set()
    splits = {
        "train": [r for i, r in enumerate(train) if i not in val_index],
        "val": [TaskRecord(**{**r.__dict__, "split": "val"}) for i, r in enumerate(train) if i in val_index],
        "test": [r for rows in test.values() for r in rows],
    }
    for name, rows in test.items():
        splits[f"test_{name}"] = rows
    for name, rows in splits.items():
        write_records(rows, out / f"{name}.parquet")
        manifest.outputs[f"{name}.parquet"] = len(rows)
    manifest.write(out)
    return manifest
