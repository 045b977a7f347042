"""Build verl-rec task records and the corpus from the ESCI release files.

Example (the paper's setting: US, small version, Exact-only binary gains)::

    python -m verl_rec.data_preprocess.esci \\
        --examples esci-data/shopping_queries_dataset/shopping_queries_dataset_examples.parquet \\
        --products esci-data/shopping_queries_dataset/shopping_queries_dataset_products.parquet \\
        --category-map product_categories.csv --out data/esci

Official files: github.com/amazon-science/esci-data (``shopping_queries_dataset/``).
"""

from __future__ import annotations

import argparse
import sys

from verl_rec.data.esci import BINARY_GAINS, GRADED_GAINS, TEXT_FIELDS, EsciOptions, build_esci
from verl_rec.data_preprocess import run_builder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", required=True, help="shopping_queries_dataset_examples.parquet")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--products", help="shopping_queries_dataset_products.parquet (corpus from product text)")
    source.add_argument("--corpus-jsonl", help='a sampled corpus, one {"id", "contents"} JSON per line')
    parser.add_argument("--category-map", help="CSV product_id,category: splits test into the paper's domains")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--locale", default="us")
    parser.add_argument("--version", choices=["small", "large"], default="small")
    parser.add_argument("--graded", action="store_true", help="gains E=3,S=2,C=1,I=0 instead of Exact-only binary")
    parser.add_argument("--text-fields", default="title,description", help=f"comma list from {','.join(TEXT_FIELDS)}")
    parser.add_argument("--val-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    options = EsciOptions(
        locale=args.locale, version=args.version, gains=dict(GRADED_GAINS if args.graded else BINARY_GAINS),
        val_size=args.val_size, seed=args.seed, text_fields=tuple(f.strip() for f in args.text_fields.split(",") if f.strip()),
    )
    return run_builder(lambda: build_esci(args.examples, args.out, args.products, args.corpus_jsonl,
                                          args.category_map, options))


if __name__ == "__main__":
    sys.exit(main())
