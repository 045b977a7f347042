"""Build verl-rec task records and the corpus from the ESCI release files.

Example (the paper's setting: US, small version, Exact-only binary gains)::

    python -m verl_rec.data_preprocess.esci \\
        --examples esci-data/shopping_queries_dataset/shopping_queries_dataset_examples.parquet \\
        --products esci-data/shopping_queries_dataset/shopping_queries_dataset_products.parquet \\
        --category-map product_categories.csv --out data/esci

The paper's released training set, on its sampled corpus (val = the first 100 train queries)::

    python -m verl_rec.data_preprocess.esci --examples ... --corpus-jsonl sampled_corpus.jsonl \
        --category-map product_categories.csv --out data/esci_released

Cross-domain transfer (train on one test domain's train-split queries, validate on another's)::

    python -m verl_rec.data_preprocess.esci --examples ... --products ... --category-map ... \
        --train-domains Sports_and_Outdoors --val-domains Video_Games --out data/esci_transfer

Official files: github.com/amazon-science/esci-data (``shopping_queries_dataset/``).
"""

from __future__ import annotations

import argparse
import sys

from verl_rec.builders.esci import (
    BINARY_GAINS,
    GRADED_GAINS,
    PAPER_DOMAINS,
    SPLIT_RULES,
    TEXT_FIELDS,
    EsciOptions,
    build_esci,
)
from verl_rec.data_preprocess import run_builder


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


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
    parser.add_argument("--split", choices=SPLIT_RULES, default="auto",
                        help="released: val = first --val-size train queries, overlap with test kept (default with "
                             "--corpus-jsonl); disjoint: seeded val, train queries with a test query's text dropped "
                             "(default with --products)")
    parser.add_argument("--train-domains", default="", help=f"comma list from {','.join(PAPER_DOMAINS)}: "
                        "train only on these domains' train-split queries (needs --category-map)")
    parser.add_argument("--val-domains", default="", help="comma list: draw val from these domains (default: --train-domains)")
    args = parser.parse_args(argv)
    options = EsciOptions(
        locale=args.locale, version=args.version, gains=dict(GRADED_GAINS if args.graded else BINARY_GAINS),
        val_size=args.val_size, seed=args.seed, text_fields=_names(args.text_fields), split=args.split,
        train_domains=_names(args.train_domains), val_domains=_names(args.val_domains),
    )
    return run_builder(lambda: build_esci(args.examples, args.out, args.products, args.corpus_jsonl,
                                          args.category_map, options))


if __name__ == "__main__":
    sys.exit(main())
