"""Build verl-rec task records and the corpus from a TREC-format test collection.

Example (the Vaswani collection; verbose requests; 40 held-out queries)::

    python -m verl_rec.data_preprocess.trec --docs ../shared/data/vaswani/corpus/doc-text.trec \\
        --topics ../shared/data/vaswani/query-text.trec --qrels ../shared/data/vaswani/qrels \\
        --out data/vaswani
    python -m verl_rec.data_preprocess.build_index --corpus data/vaswani/corpus.jsonl \\
        --backend lucene --index data/vaswani/index_lucene

Writes corpus.jsonl, train.parquet, test.parquet (held-out queries, training phrasings),
test_unseen.parquet (the same queries in phrasings training never shows: ours, or yours with
``--templates FILE``, one ``{topic}`` template per line) and manifest.json.
The split is a seeded shuffle of the query ids, made before anything is scored.
"""

from __future__ import annotations

import argparse
import sys

from verl_rec.builders.requests import UNSEEN_REQUEST_TEMPLATES, read_templates
from verl_rec.builders.trec_collection import REQUEST_KINDS, TrecOptions, build_trec_collection
from verl_rec.data_preprocess import run_builder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", required=True, help="TREC documents: <DOC><DOCNO>id</DOCNO> text </DOC>")
    parser.add_argument("--topics", required=True, help="TREC topics: <top><num>id</num><title>text</title></top>")
    parser.add_argument("--qrels", required=True, help="qrels: 'query_id iter doc_id relevance' per line")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--data-source", default="vaswani", help="the data_source of every record (metric keys)")
    parser.add_argument("--heldout", type=int, default=40, help="queries held out for validation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the held-out templates")
    parser.add_argument("--requests", choices=REQUEST_KINDS, default="verbose",
                        help="verbose: natural-language requests around each query; terse: the query as is")
    parser.add_argument("--templates", default=None, metavar="FILE",
                        help="the held-out queries' unseen phrasings (test_unseen.parquet): one {topic} template "
                             "per line; default: the package's own")
    args = parser.parse_args(argv)

    def build():
        unseen = read_templates(args.templates) if args.templates else UNSEEN_REQUEST_TEMPLATES
        options = TrecOptions(data_source=args.data_source, heldout=args.heldout, seed=args.seed,
                              requests=args.requests, unseen_templates=unseen, templates_file=args.templates)
        return build_trec_collection(args.docs, args.topics, args.qrels, args.out, options)

    return run_builder(build)


if __name__ == "__main__":
    sys.exit(main())
