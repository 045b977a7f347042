"""Build re-ranking task records: top-K first-stage candidates of search records, anonymised.

Example (the paper's setting: 16 BM25 candidates of the ESCI queries)::

    python -m verl_rec.data_preprocess.rerank --records data/esci/train.parquet data/esci/val.parquet \\
        data/esci/test.parquet --corpus data/esci/corpus.jsonl \\
        --backend lucene --index data/esci/index_lucene --out data/rerank_esci

or, with a first stage computed elsewhere, a TREC run file whose query ids are record ids:
``--run bm25.trec`` instead of --backend/--index. Candidates are listed as Item_1..Item_K in a
seeded random order; records with no relevant item among the K are dropped (and counted in
manifest.json). Each output parquet has a <name>.candidates.jsonl sidecar mapping the
anonymised ids back to document ids, with the first-stage order.
"""

from __future__ import annotations

import argparse
import json
import sys

from verl_rec.builders.rerank import RerankOptions, build_rerank
from verl_rec.data_preprocess import run_builder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", nargs="+", required=True, help="search task-record parquet files")
    parser.add_argument("--corpus", required=True, help="the corpus JSONL the candidates' text comes from")
    parser.add_argument("--out", required=True, help="output folder (one parquet per input, same names)")
    first = parser.add_mutually_exclusive_group(required=True)
    first.add_argument("--index", help="index of the first-stage retriever (with --backend)")
    first.add_argument("--run", help="TREC run file 'qid Q0 docid rank score tag' with qid = record_id")
    parser.add_argument("--backend", default="lucene", help="first-stage retriever backend (lucene, bm25s, ...)")
    parser.add_argument("--backend-options", default="{}", help='JSON options for the retriever, e.g. {"heap": "4g"}')
    parser.add_argument("-k", "--top-k", type=int, default=16, help="candidates per record")
    parser.add_argument("--max-words", type=int, default=100, help="words of text per candidate (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source-prefix", default="rerank", help="data_source becomes <prefix>_<source data_source>")
    args = parser.parse_args(argv)
    options = RerankOptions(k=args.top_k, seed=args.seed, max_words=args.max_words, source_prefix=args.source_prefix)

    def build():
        if args.run:
            from verl_rec.builders.io import read_run

            return build_rerank(args.records, args.out, args.corpus, run=read_run(args.run), options=options,
                                settings={"run": args.run})
        from verl_rec.retrieval.registry import open_retriever

        backend_options = json.loads(args.backend_options)
        with open_retriever(args.backend, args.index, **backend_options) as retriever:
            return build_rerank(args.records, args.out, args.corpus, retriever=retriever, options=options,
                                settings={"backend": args.backend, "index": args.index, **backend_options})

    return run_builder(build)


if __name__ == "__main__":
    sys.exit(main())
