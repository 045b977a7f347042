"""ESCI (Amazon Shopping Queries) -> verl-rec task records, corpus and manifest.

Paper setting by default: locale ``us``, ``small_version == 1``, Exact labels only (binary
gain). Options: the large version, graded gains (E/S/C/I), the four paper test domains when
a product -> category map is given, and the corpus either from the products parquet (chosen
text fields) or from a user-supplied sampled corpus JSONL (the paper's).

How train and val are cut from the train split (``split``):

* ``released`` (the default with ``--corpus-jsonl``, the paper's sampled corpus): the released
  training set. Queries in order of first appearance (by ``example_id``); val = the first
  ``val_size`` (100), unshuffled; train = the rest. With a category map, train targets without
  a category are dropped, as the released filter did. Train queries whose text is also a test
  query are kept, as released (counted in the manifest).
* ``disjoint`` (the default with ``--products``): val is a seeded random sample, and train/val
  queries whose text also appears in test are dropped (and counted).

Either way val holds no test query (the released val also held every test query: Rec-R1
defect 7). ``train_domains`` keeps only train-split queries of those test domains for
training, and ``val_domains`` (default: the same) draws val from those domains' train-split
queries: the paper's cross-domain transfer setting, with test files for every domain. A
split that would leave train empty fails, saying why.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from verl_rec.builders.download import resolve_input
from verl_rec.builders.io import read_table, require_type
from verl_rec.builders.manifest import Manifest
from verl_rec.errors import InputError
from verl_rec.tasks.record_files import write_records
from verl_rec.tasks.records import TaskRecord

EXAMPLE_COLUMNS = ("example_id", "query", "query_id", "product_id", "product_locale", "esci_label",
                   "small_version", "large_version", "split")
PRODUCT_COLUMNS = ("product_id", "product_title", "product_description", "product_bullet_point",
                   "product_brand", "product_color", "product_locale")
TEXT_FIELDS = ("title", "description", "bullet_point", "brand", "color")
BINARY_GAINS = {"E": 1.0}
GRADED_GAINS = {"E": 3.0, "S": 2.0, "C": 1.0, "I": 0.0}
PAPER_DOMAINS = ("Video_Games", "Baby_Products", "Office_Products", "Sports_and_Outdoors")
SPLIT_RULES = ("auto", "released", "disjoint")


@dataclass
class EsciOptions:
    locale: str = "us"
    version: str = "small"  # small | large
    gains: dict[str, float] = field(default_factory=lambda: dict(BINARY_GAINS))
    val_size: int = 100
    seed: int = 0
    text_fields: tuple[str, ...] = ("title", "description")
    domains: tuple[str, ...] = PAPER_DOMAINS
    source_name: str = "esci"
    split: str = "auto"  # auto | released | disjoint (see the module docstring)
    train_domains: tuple[str, ...] = ()  # train only on these test domains' train-split queries
    val_domains: tuple[str, ...] = ()  # val from these domains (default: train_domains)


def split_rule(options: EsciOptions, sampled_corpus: bool) -> str:
    """``released`` on the paper's sampled corpus, ``disjoint`` on the official products, unless chosen."""
    if options.split not in SPLIT_RULES:
        raise InputError(f"--split must be one of {SPLIT_RULES}, got {options.split!r}")
    if options.split == "auto":
        return "released" if sampled_corpus else "disjoint"
    return options.split


def check_transfer_domains(options: EsciOptions, has_category_map: bool) -> None:
    """Transfer options name known test domains and need the category map that assigns them."""
    chosen = (*options.train_domains, *options.val_domains)
    if not chosen:
        return
    if options.val_domains and not options.train_domains:
        raise InputError("--val-domains needs --train-domains (without it val comes from every domain)")
    if not has_category_map:
        raise InputError("--train-domains/--val-domains need --category-map (it assigns each query its domain)")
    unknown = sorted(set(chosen) - set(options.domains))
    if unknown:
        raise InputError(f"unknown domain(s) {unknown}; the test domains are {list(options.domains)}")


def load_examples(path: Path, options: EsciOptions, manifest: Manifest) -> pd.DataFrame:
    frame = read_table(path, EXAMPLE_COLUMNS, "ESCI examples")
    for column, kind in (("query", "string"), ("product_id", "string"), ("esci_label", "string"), ("query_id", "integer")):
        require_type(frame, path, column, kind)
    manifest.inputs["example_rows"] = len(frame)
    keep = frame["product_locale"] == options.locale
    manifest.drop("example_other_locale", int((~keep).sum()))
    frame = frame[keep]
    version_col = f"{options.version}_version"
    if version_col not in ("small_version", "large_version"):
        raise InputError(f"--version must be small or large, got {options.version!r}")
    keep = frame[version_col] == 1
    manifest.drop(f"example_not_in_{options.version}_version", int((~keep).sum()))
    frame = frame[keep]
    bad_label = ~frame["esci_label"].isin(list("ESCI"))
    manifest.drop("example_unknown_label", int(bad_label.sum()))
    frame = frame[~bad_label]
    missing_id = frame["query_id"].isna() | frame["product_id"].isna()
    manifest.drop("example_missing_query_or_product_id", int(missing_id.sum()))
    frame = frame[~missing_id]
    missing_query = frame["query"].isna() | (frame["query"].astype(str).str.strip() == "")
    manifest.drop("example_empty_query", int(missing_query.sum()))
    frame = frame[~missing_query]
    dup = frame.duplicated(subset=["query_id", "product_id"], keep="first")
    manifest.drop("example_duplicate_judgement", int(dup.sum()))
    return frame[~dup].sort_values("example_id")


def product_text(row: pd.Series, fields: tuple[str, ...]) -> str:
    parts = []
    for name in fields:
        value = row.get(f"product_{name}")
        if isinstance(value, str) and value.strip():
            parts.append(" ".join(value.split()))
    return "\n".join(parts)


def write_corpus_from_products(path: Path, options: EsciOptions, out: Path, manifest: Manifest) -> set[str]:
    unknown = [f for f in options.text_fields if f not in TEXT_FIELDS]
    if unknown:
        raise InputError(f"unknown text field(s) {unknown}; choose from {list(TEXT_FIELDS)}")
    products = read_table(path, PRODUCT_COLUMNS, "ESCI products")
    require_type(products, path, "product_id", "string")
    manifest.inputs["product_rows"] = len(products)
    keep = products["product_locale"] == options.locale
    manifest.drop("product_other_locale", int((~keep).sum()))
    products = products[keep]
    dup = products.duplicated(subset=["product_id"], keep="first")
    manifest.drop("product_duplicate_id", int(dup.sum()))
    products = products[~dup]
    ids: set[str] = set()
    empty = 0
    with out.open("w", encoding="utf-8") as handle:
        for _, row in tqdm(products.iterrows(), total=len(products), desc="corpus", unit="doc", mininterval=2):
            text = product_text(row, options.text_fields)
            if not text:
                empty += 1
                continue
            handle.write(json.dumps({"id": row["product_id"], "contents": text}, ensure_ascii=False) + "\n")
            ids.add(row["product_id"])
    manifest.drop("product_no_text_in_chosen_fields", empty)
    return ids


def copy_sampled_corpus(path: Path, out: Path) -> set[str]:
    """The paper's sampled corpus (``{"id", "contents"}`` JSONL), checked line by line."""
    from verl_rec.retrieval.corpus import iter_corpus

    ids = {doc_id for doc_id, _ in iter_corpus(path)}
    shutil.copyfile(path, out)
    return ids


def assign_domains(examples: pd.DataFrame, category_map: pd.DataFrame | None, options: EsciOptions) -> dict[int, str]:
    """Domain of a query = category of its first (lowest example_id) positive target."""
    if category_map is None:
        return {}
    categories = dict(zip(category_map["product_id"].astype(str), category_map["category"].astype(str)))
    domains: dict[int, str] = {}
    for query_id, group in examples.groupby("query_id", sort=False):
        first = group.iloc[0]["product_id"]
        category = categories.get(first, "other")
        domains[int(query_id)] = category if category in options.domains else "other"
    return domains


def build_esci(
    examples_path: str | Path,
    out_dir: str | Path,
    products_path: str | Path | None = None,
    corpus_jsonl: str | Path | None = None,
    category_map_path: str | Path | None = None,
    options: EsciOptions = EsciOptions(),
) -> Manifest:
    """Write ``train/val/test[_<domain>].parquet``, ``corpus.jsonl`` and ``manifest.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("esci", settings={**options.__dict__, "examples": str(examples_path),
                                          "products": str(products_path), "corpus_jsonl": str(corpus_jsonl)})
    if (products_path is None) == (corpus_jsonl is None):
        raise InputError("give exactly one corpus source: --products (official parquet) or --corpus-jsonl (sampled)")
    # URLs (http(s)://, file://) are downloaded once into $VERL_REC_CACHE; local paths pass through
    examples_path = resolve_input(examples_path)
    products_path = resolve_input(products_path) if products_path is not None else None
    corpus_jsonl = resolve_input(corpus_jsonl) if corpus_jsonl is not None else None
    category_map_path = resolve_input(category_map_path) if category_map_path else None
    rule = split_rule(options, corpus_jsonl is not None)
    check_transfer_domains(options, category_map_path is not None)
    manifest.settings["split_rule"] = rule
    examples = load_examples(Path(examples_path), options, manifest)
    corpus_ids = (
        write_corpus_from_products(Path(products_path), options, out / "corpus.jsonl", manifest)
        if products_path is not None else copy_sampled_corpus(Path(corpus_jsonl), out / "corpus.jsonl")
    )
    manifest.outputs["corpus_docs"] = len(corpus_ids)

    examples = examples.assign(gain=examples["esci_label"].map(lambda label: options.gains.get(label, 0.0)))
    positive = examples[examples["gain"] > 0]
    in_corpus = positive["product_id"].isin(corpus_ids)
    manifest.drop("target_not_in_corpus", int((~in_corpus).sum()))
    positive = positive[in_corpus]
    category_map = (read_table(category_map_path, ("product_id", "category"), "category map",
                               dtype={"product_id": str, "category": str}) if category_map_path else None)
    if rule == "released" and category_map is not None:  # the released train set kept categorised items only
        known = set(category_map.loc[~category_map["category"].fillna("").str.strip().str.lower().isin(["", "unknown"]), "product_id"])
        uncategorised = (positive["split"] != "test") & ~positive["product_id"].isin(known)
        manifest.drop("train_target_without_category", int(uncategorised.sum()))
        positive = positive[~uncategorised]
    domains = assign_domains(positive, category_map, options)

    records: dict[str, list[TaskRecord]] = {"train": [], "test": []}
    all_queries = examples.drop_duplicates("query_id")
    with_target = set(positive["query_id"].tolist())
    manifest.drop("query_without_relevant_product", int((~all_queries["query_id"].isin(with_target)).sum()))
    manifest.inputs["queries"] = len(all_queries)
    # released: queries in order of first appearance, as the released grouping kept them
    for query_id, group in positive.groupby("query_id", sort=rule != "released"):
        first = group.iloc[0]
        split = "test" if first["split"] == "test" else "train"
        domain = domains.get(int(query_id))
        source = f"{options.source_name}/{domain}" if domain else options.source_name
        qrels = {str(p): float(g) for p, g in zip(group["product_id"], group["gain"])}
        records[split].append(TaskRecord(f"esci-{int(query_id)}", source, "search", qrels, query=str(first["query"]).strip(), split=split))

    splits = {**split_train(records["train"], records["test"], rule, options, manifest), "test": records["test"]}
    for domain in sorted({r.data_source for r in records["test"]} - {options.source_name}):
        splits[f"test_{domain.split('/', 1)[1]}"] = [r for r in records["test"] if r.data_source == domain]
    for name, rows in splits.items():
        write_records(rows, out / f"{name}.parquet")
        manifest.outputs[f"{name}.parquet"] = len(rows)
    manifest.write(out)
    return manifest


def _domain(record: TaskRecord) -> str:
    return record.data_source.partition("/")[2]


def split_train(pool: list[TaskRecord], test: list[TaskRecord], rule: str, options: EsciOptions,
                manifest: Manifest) -> dict[str, list[TaskRecord]]:
    """Train and val from the train-split queries (``pool``, in the rule's order)."""
    test_texts = {r.query.lower() for r in test}
    overlap = sum(1 for r in pool if r.query.lower() in test_texts)
    if rule == "disjoint":
        pool = [r for r in pool if r.query.lower() not in test_texts]
        manifest.drop("train_query_text_also_in_test", overlap)
    else:
        manifest.note("train_queries_whose_text_is_a_test_query_kept", overlap)
    val_pool = pool
    if options.train_domains:
        val_domains = set(options.val_domains or options.train_domains)
        val_pool = [r for r in pool if _domain(r) in val_domains]
        in_train = [r for r in pool if _domain(r) in set(options.train_domains)]
        manifest.drop("train_query_outside_train_domains", len(pool) - len(in_train))
        pool = in_train
    if rule == "released":
        picked = val_pool[:options.val_size]
    else:
        rng = np.random.default_rng(options.seed)
        size = min(options.val_size, len(val_pool))
        picked = [val_pool[i] for i in sorted(rng.choice(len(val_pool), size=size, replace=False).tolist())] if size else []
    val_ids = {r.record_id for r in picked}
    train = [r for r in pool if r.record_id not in val_ids]
    if not train:
        where = f" of domain(s) {list(options.train_domains)}" if options.train_domains else ""
        raise InputError(f"no training query left: {len(pool)} train-split queries{where} remain after filtering and "
                         f"--val-size {options.val_size} took {len([r for r in pool if r.record_id in val_ids])} of them "
                         "for validation; lower --val-size (the dropped counts in the manifest say what was filtered)")
    val = [TaskRecord(**{**r.__dict__, "split": "val"}) for r in val_pool if r.record_id in val_ids]
    return {"train": train, "val": val}
