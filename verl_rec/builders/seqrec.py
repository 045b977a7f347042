"""Amazon Reviews 2023 sequential recommendation -> verl-rec task records, corpus and manifest.

Inputs, per category (any category name), as released by the McAuley lab:

* ``<Category>.train.csv`` / ``.valid.csv`` / ``.test.csv`` from the benchmark
  ``0core/timestamp_w_his``: user_id, parent_asin, rating, timestamp, history (the user's
  earlier parent_asins, oldest first, space-separated; empty for a first purchase).
* ``meta_<Category>.jsonl``: one item per line (parent_asin, title, features, description,
  categories, ...; ``features``/``description`` are lists of strings).

Records (task ``seqrec``): ``history`` = titles of the last ``history_len`` history items
that have a title (items without one are skipped and counted), oldest first; target = the
row's parent_asin, qrels ``{parent_asin: 1}``. A row whose target has no text in the
metadata, or with no titled history item, is dropped and counted.

Splits (the paper's, All_Beauty): train = the first ``train_rows`` rows of the train file
(100k). An item is *seen* when it is the target or a shown history item of a kept train
record. Test rows are *transductive* when their target and every shown history item are
seen, *inductive* (cold start) when the target is unseen; rows that are neither are counted
out. Each setting is capped by a seeded sample (paper: 538 transductive, 1,000 inductive).
Validation records come from the valid file (seeded sample of ``val_size``), never from test.
The corpus is every item of the metadata with text (title + features + description).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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

INTERACTION_COLUMNS = ("user_id", "parent_asin", "rating", "timestamp", "history")
META_REQUIRED = {"parent_asin": "string"}
META_OPTIONAL = {"title": "string", "features": "list", "description": "list", "categories": "list"}
TEXT_FIELDS = ("title", "features", "description", "categories")


@dataclass
class SeqrecOptions:
    category: str = "All_Beauty"
    history_len: int = 10
    train_rows: int | None = 100_000  # None: the whole file
    max_transductive: int | None = 1000
    max_inductive: int | None = 1000
    val_size: int | None = 1000
    seed: int = 0
    text_fields: tuple[str, ...] = ("title", "features", "description")


@dataclass(frozen=True)
class SeqrecFiles:
    train: str | Path
    valid: str | Path
    test: str | Path
    meta: str | Path

    @classmethod
    def in_dir(cls, folder: str | Path, category: str) -> SeqrecFiles:
        """``<dir>/<Category>.{train,valid,test}.csv[.gz]`` and ``<dir>/meta_<Category>.jsonl[.gz]``."""
        folder = Path(folder)

        def pick(name: str) -> Path:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
            return folder / name  # missing: the reader names it

        return cls(*(pick(f"{category}.{split}.csv") for split in ("train", "valid", "test")),
                   pick(f"meta_{category}.jsonl"))


def write_item_corpus(path: Path, out: Path, fields: tuple[str, ...], manifest: Manifest) -> tuple[set[str], dict[str, str]]:
    """Stream the metadata into ``corpus.jsonl``; return the ids written and every item's title."""
    unknown = [f for f in fields if f not in TEXT_FIELDS]
    if unknown:
        raise InputError(f"unknown text field(s) {unknown}; choose from {list(TEXT_FIELDS)}")
    titles: dict[str, str] = {}

    def keep_title(asin: str, item: Mapping[str, Any]) -> None:
        title = clean_text(item.get("title"))
        if title:
            titles[asin] = title

    def text_of(item: Mapping[str, Any]) -> str:
        return "\n".join(t for t in (clean_text(item.get(f)) for f in fields) if t)

    items = tqdm(iter_jsonl(path, "item metadata", META_REQUIRED, META_OPTIONAL), desc="metadata", unit="item",
                 mininterval=2)
    ids, counts = write_unique_items((item for _, item in items), out, "parent_asin", text_of, keep_title)
    manifest.inputs["meta_rows"] = counts.rows
    manifest.drop("item_duplicate_parent_asin", counts.duplicates)
    manifest.drop("item_no_text", counts.empty)
    manifest.outputs["items_with_title"] = len(titles)
    return ids, titles


def load_interactions(path: Path, what: str, manifest: Manifest, nrows: int | None = None) -> pd.DataFrame:
    """A benchmark CSV with ids as text; rows without user or target are counted out."""
    frame = read_table(path, INTERACTION_COLUMNS, what, nrows=nrows,
                       dtype={"user_id": str, "parent_asin": str, "history": str})
    require_type(frame, path, "timestamp", "integer")
    require_type(frame, path, "rating", "number")
    manifest.inputs[f"{what}_rows"] = len(frame)
    missing = frame["parent_asin"].isna() | frame["user_id"].isna()
    manifest.drop(f"{what}_missing_user_or_parent_asin", int(missing.sum()))
    return frame[~missing]


def make_records(frame: pd.DataFrame, split: str, source: str, corpus_ids: set[str], titles: dict[str, str],
                 options: SeqrecOptions, manifest: Manifest) -> list[tuple[TaskRecord, list[str]]]:
    """Records of one file, each with the asins of its shown history (for the seen-item rules)."""
    out: list[tuple[TaskRecord, list[str]]] = []
    skipped_items = no_target = no_history = 0
    for index, target, history in zip(frame.index, frame["parent_asin"], frame["history"]):
        target = target.strip()
        if target not in corpus_ids:
            no_target += 1
            continue
        items = str(history).split() if isinstance(history, str) else []
        titled = [a for a in items if a in titles]
        skipped_items += len(items) - len(titled)
        shown = titled[-options.history_len:] if options.history_len > 0 else titled
        if not shown:
            no_history += 1
            continue
        record = TaskRecord(f"{options.category}-{split}-{index}", source, "seqrec", {target: 1.0},
                            history=tuple(titles[a] for a in shown), split=split)
        out.append((record, shown))
    manifest.drop(f"{split}_target_without_metadata", no_target)
    manifest.drop(f"{split}_no_history_item_with_title", no_history)
    manifest.drop(f"{split}_history_items_without_title", skipped_items)  # items skipped, rows kept
    return out


def _sample(rows: list, cap: int | None, rng: np.random.Generator) -> list:
    """A seeded sample of at most ``cap`` rows, in file order."""
    if cap is None or len(rows) <= cap:
        return rows
    keep = sorted(rng.choice(len(rows), size=cap, replace=False).tolist())
    return [rows[i] for i in keep]


def split_by_novelty(rows: list, seen: set[str], source: str) -> tuple[list[TaskRecord], list[TaskRecord], int]:
    """Transductive (target and every shown history item seen in train) and inductive (target
    unseen: cold start) records; rows that are neither are counted, not kept."""
    transductive, inductive, neither = [], [], 0
    for record, shown in rows:
        target = next(iter(record.qrels))
        if target not in seen:
            inductive.append(TaskRecord(**{**record.__dict__, "data_source": f"{source}/inductive"}))
        elif all(a in seen for a in shown):
            transductive.append(TaskRecord(**{**record.__dict__, "data_source": f"{source}/transductive"}))
        else:
            neither += 1
    return transductive, inductive, neither


def build_seqrec(files: SeqrecFiles, out_dir: str | Path, options: SeqrecOptions = SeqrecOptions(),
                 cache_dir: str | Path | None = None) -> Manifest:
    """Write ``train/val[_transductive|_inductive]/test_transductive/test_inductive.parquet``, ``corpus.jsonl``, ``manifest.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("seqrec", settings={**options.__dict__, **{k: str(v) for k, v in files.__dict__.items()}})
    corpus_ids, titles = write_item_corpus(resolve_input(files.meta, cache_dir), out / "corpus.jsonl",
                                           options.text_fields, manifest)
    manifest.outputs["corpus_docs"] = len(corpus_ids)
    source = f"seqrec_{options.category}"
    rng = np.random.default_rng(options.seed)

    train_frame = load_interactions(resolve_input(files.train, cache_dir), "train", manifest, nrows=options.train_rows)
    train = make_records(train_frame, "train", f"{source}/train", corpus_ids, titles, options, manifest)
    if not train:
        raise InputError(f"no training record left from {files.train}: every row was dropped ({dict(manifest.dropped)}); "
                         "check the files and --train-rows")
    seen: set[str] = set()
    for record, shown in train:
        seen.update(record.qrels)
        seen.update(shown)
    manifest.outputs["items_seen_in_train"] = len(seen)

    valid_frame = load_interactions(resolve_input(files.valid, cache_dir), "valid", manifest)
    val = make_records(valid_frame, "val", f"{source}/val", corpus_ids, titles, options, manifest)
    val_kept = _sample(val, options.val_size, rng)
    manifest.drop("val_over_val_size", len(val) - len(val_kept))

    test_frame = load_interactions(resolve_input(files.test, cache_dir), "test", manifest)
    test = make_records(test_frame, "test", source, corpus_ids, titles, options, manifest)
    transductive, inductive, neither = split_by_novelty(test, seen, source)
    manifest.drop("test_seen_target_with_unseen_history_item", neither)
    kept_t = _sample(transductive, options.max_transductive, rng)
    kept_i = _sample(inductive, options.max_inductive, rng)
    manifest.drop("test_transductive_over_cap", len(transductive) - len(kept_t))
    manifest.drop("test_inductive_over_cap", len(inductive) - len(kept_i))
    # the same two settings on validation data (from the valid file), so that checkpoints are
    # chosen per setting without ever looking at test (Rec-R1 defect 7)
    val_t, val_i, val_neither = split_by_novelty(val_kept, seen, f"{source}/val")
    manifest.drop("val_seen_target_with_unseen_history_item", val_neither)

    splits = {
        "train": [r for r, _ in train],
        "val": [r for r, _ in val_kept],
        "val_transductive": val_t,
        "val_inductive": val_i,
        "test_transductive": kept_t,
        "test_inductive": kept_i,
    }
    for name, rows in splits.items():
        write_records(rows, out / f"{name}.parquet")
        manifest.outputs[f"{name}.parquet"] = len(rows)
    manifest.write(out)
    return manifest
