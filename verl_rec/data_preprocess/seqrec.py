"""Build verl-rec sequential-recommendation records from Amazon Reviews 2023 files.

Example (the paper's setting: All_Beauty, first 100k train rows, history of 10 titles)::

    python -m verl_rec.data_preprocess.seqrec --category All_Beauty --dir raw/amazon2023 \\
        --out data/seqrec_All_Beauty --max-transductive 538 --max-inductive 1000

``--dir`` holds <Category>.train.csv, <Category>.valid.csv, <Category>.test.csv (the
benchmark "0core / timestamp_w_his" files) and meta_<Category>.jsonl (".gz" accepted).
Or name each file (local path or URL) with --train/--valid/--test/--meta.

Official files (McAuley lab, https://amazon-reviews-2023.github.io): Hugging Face dataset
McAuley-Lab/Amazon-Reviews-2023, paths benchmark/0core/timestamp_w_his/<Category>.<split>.csv
and raw/meta_categories/meta_<Category>.jsonl (also gzipped on
https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/).

Writes train.parquet, val.parquet (from the valid file), test_transductive.parquet,
test_inductive.parquet, corpus.jsonl (the category's items) and manifest.json.
"""

from __future__ import annotations

import argparse
import sys

from verl_rec.builders.seqrec import TEXT_FIELDS, SeqrecFiles, SeqrecOptions, build_seqrec
from verl_rec.data_preprocess import run_builder


def _cap(value: str) -> int | None:
    number = int(value)
    return None if number <= 0 else number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", required=True, help="category name as in the file names, e.g. All_Beauty")
    parser.add_argument("--dir", help="folder with the four files of the category")
    for split in ("train", "valid", "test"):
        parser.add_argument(f"--{split}", help=f"<Category>.{split}.csv (path or URL; overrides --dir)")
    parser.add_argument("--meta", help="meta_<Category>.jsonl (path or URL; overrides --dir)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--history-len", type=int, default=10, help="titles of the last N history items in the prompt")
    parser.add_argument("--train-rows", type=int, default=100_000, help="first N rows of the train file (0: all)")
    parser.add_argument("--max-transductive", type=_cap, default=1000, help="cap on transductive test rows (0: none)")
    parser.add_argument("--max-inductive", type=_cap, default=1000, help="cap on inductive test rows (0: none)")
    parser.add_argument("--val-size", type=_cap, default=1000, help="cap on validation rows from the valid file (0: none)")
    parser.add_argument("--text-fields", default="title,features,description", help=f"corpus text, from {','.join(TEXT_FIELDS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", help="where URL inputs are downloaded (default $VERL_REC_CACHE or ~/.cache/verl_rec)")
    args = parser.parse_args(argv)
    found = SeqrecFiles.in_dir(args.dir, args.category) if args.dir else None
    paths = {name: getattr(args, name) or (getattr(found, name) if found else None) for name in ("train", "valid", "test", "meta")}
    missing = [f"--{name}" for name, value in paths.items() if value is None]
    if missing:
        parser.error(f"give --dir or all of {missing}")
    options = SeqrecOptions(
        category=args.category, history_len=args.history_len, train_rows=args.train_rows or None,
        max_transductive=args.max_transductive, max_inductive=args.max_inductive, val_size=args.val_size,
        seed=args.seed, text_fields=tuple(f.strip() for f in args.text_fields.split(",") if f.strip()),
    )
    return run_builder(lambda: build_seqrec(SeqrecFiles(**paths), args.out, options, cache_dir=args.cache_dir))


if __name__ == "__main__":
    sys.exit(main())
