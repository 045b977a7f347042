"""Build the small bundled catalog as task records + corpus + index, for integration tests."""

from __future__ import annotations

from pathlib import Path

from verl_rec.data.esci import EsciOptions, build_esci
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
