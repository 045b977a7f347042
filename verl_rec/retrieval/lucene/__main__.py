"""``python -m verl_rec.retrieval.lucene build corpus.jsonl index_dir`` (and the indexer's child entry)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from verl_rec.retrieval.corpus import CorpusFormat
from verl_rec.retrieval.lucene.build import build_lucene_index, index_main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m verl_rec.retrieval.lucene",
                                     description="Build a Lucene (Anserini) index of a JSONL corpus.")
    sub = parser.add_subparsers(dest="command", required=True)
    raw = sub.add_parser("index", help="internal: run Anserini IndexCollection with the given arguments")
    raw.add_argument("--heap", default="2g")
    raw.add_argument("anserini_args", nargs=argparse.REMAINDER)
    build = sub.add_parser("build", help="build a Lucene index from a JSONL corpus")
    build.add_argument("corpus")
    build.add_argument("index_dir")
    build.add_argument("--id-field", default="id")
    build.add_argument("--text-fields", nargs="+", default=["contents"])
    build.add_argument("--threads", type=int, default=2)
    build.add_argument("--heap", default="2g")
    build.add_argument("--verbose", action="store_true", help="echo the Java indexer's log (always in <index_dir>/build.log)")
    args = parser.parse_args(argv)
    if args.command == "index":
        index_main(args.heap, [a for a in args.anserini_args if a != "--"])
    else:
        fmt = CorpusFormat.of(args.id_field, args.text_fields)
        build_lucene_index(args.corpus, args.index_dir, fmt, threads=args.threads, heap=args.heap, verbose=args.verbose)


if __name__ == "__main__":
    main()
