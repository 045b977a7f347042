"""Build verl-rec task records and the corpus from the Amazon-C4 release files.

Example (the paper's setting: four test domains, the other queries for training)::

    python -m verl_rec.data_preprocess.c4 \\
        --queries https://huggingface.co/datasets/McAuley-Lab/Amazon-C4/resolve/main/test.csv \\
        --items https://huggingface.co/datasets/McAuley-Lab/Amazon-C4/resolve/main/sampled_item_metadata_1M.jsonl \\
        --out data/c4

Inputs may be local paths or URLs (downloaded once into --cache-dir). Official files: Hugging
Face dataset McAuley-Lab/Amazon-C4 (test.csv, sampled_item_metadata_1M.jsonl); code and
description: github.com/hyp1231/AmazonReviews2023 (amazon-c4/).

Writes train/val/test.parquet, test_<Domain>.parquet, corpus.jsonl and manifest.json.
"""

from __future__ import annotations

import argparse
import sys

from verl_rec.builders.c4 import PAPER_DOMAINS, C4Options, build_c4, parse_domains
from verl_rec.data_preprocess import run_builder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", required=True, help="test.csv (qid, query, item_id, user_id, ori_rating, ori_review)")
    parser.add_argument("--items", required=True, help="sampled_item_metadata_1M.jsonl (item_id, category, metadata)")
    parser.add_argument("--out", required=True, help="output folder")
    default_domains = " ".join(PAPER_DOMAINS)
    parser.add_argument("--domain", action="append", metavar="NAME[=CATEGORY|CATEGORY...]",
                        help=f"a test domain and the item categories it covers; repeat for several "
                             f"(default, the paper's: {default_domains}, each its own category)")
    parser.add_argument("--val-size", type=int, default=1000, help="validation queries drawn from the non-test ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", help="where URL inputs are downloaded (default $VERL_REC_CACHE or ~/.cache/verl_rec)")
    args = parser.parse_args(argv)

    def build():
        domains = parse_domains(args.domain) if args.domain else dict(PAPER_DOMAINS)
        options = C4Options(domains=domains, val_size=args.val_size, seed=args.seed)
        return build_c4(args.queries, args.items, args.out, options, cache_dir=args.cache_dir)

    return run_builder(build)


if __name__ == "__main__":
    sys.exit(main())
