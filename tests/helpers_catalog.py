"""Build the small bundled catalog as task records + corpus + index, for integration tests."""

from __future__ import annotations

from pathlib import Path

from verl_rec.builders.esci import EsciOptions, build_esci
from verl_rec.devkit.synthetic_catalog import write_esci_release


def build_catalog_task(out_dir: Path, n_products: int = 600, n_queries: int = 80, val_size: int = 8) -> Path:
    """Write ``train/val/test.parquet`` and ``corpus.jsonl`` of a synthetic ESCI catalog."""
    raw = write_esci_release(out_dir / "raw", n_products=n_products, n_queries=n_queries)
    build_esci(
        raw / "shopping_queries_dataset_examples.parquet", out_dir / "esci",
        products_path=raw / "shopping_queries_dataset_products.parquet",
        category_map_path=raw / "product_categories.csv", options=EsciOptions(val_size=val_size),
    )
    return out_dir / "esci"


def build_c4_catalog_task(out_dir: Path, n_products: int = 600, n_queries: int = 80, val_size: int = 8) -> Path:
    """The same synthetic catalog in the Amazon-C4 release schema (``test.csv`` + item pool
    JSONL), run through the real C4 builder: ``train/val/test.parquet`` and ``corpus.jsonl``.
    Queries become sentences around the catalog query; Video_Games queries are the test domain."""
    import json

    import pandas as pd

    from verl_rec.builders.c4 import C4Options, build_c4

    raw = write_esci_release(out_dir / "raw", n_products=n_products, n_queries=n_queries)
    products = pd.read_parquet(raw / "shopping_queries_dataset_products.parquet")
    categories = pd.read_csv(raw / "product_categories.csv").set_index("product_id")["category"]
    release = out_dir / "c4_release"
    release.mkdir(parents=True, exist_ok=True)
    with (release / "sampled_item_metadata_1M.jsonl").open("w") as handle:
        for row in products.itertuples(index=False):
            text = "\n".join(t for t in (row.product_title, row.product_description) if isinstance(t, str))
            handle.write(json.dumps({"item_id": row.product_id, "category": categories[row.product_id],
                                     "metadata": text}) + "\n")
    examples = pd.read_parquet(raw / "shopping_queries_dataset_examples.parquet")
    first = examples.groupby("query_id", sort=True).first().reset_index()  # the product the query was written from
    pd.DataFrame({"qid": first["query_id"], "query": "I need something like " + first["query"] + " for everyday use.",
                  "item_id": first["product_id"], "user_id": "U" + first["query_id"].astype(str), "ori_rating": 5,
                  "ori_review": ""}).to_csv(release / "test.csv", index=False)
    build_c4(release / "test.csv", release / "sampled_item_metadata_1M.jsonl", out_dir / "c4",
             C4Options(domains={"Games": ("Video_Games",)}, val_size=val_size))
    return out_dir / "c4"
