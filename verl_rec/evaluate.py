"""Evaluate query writers on task records, per test domain, with the paper's metrics.

Examples::

    # the raw-query baseline (the record's own query), BM25 over the ESCI corpus
    python -m verl_rec.evaluate --records data/esci/test.parquet \\
        --backend lucene --index data/esci/index_lucene --out results/esci_raw

    # a trained checkpoint (merged to Hugging Face format), against the baseline, with a chart
    python -m verl_rec.evaluate --records data/esci/test.parquet --backend lucene \\
        --index data/esci/index_lucene --raw --model rec-r1=checkpoints/esci_bm25_hf \\
        --out results/esci --plot

    # outputs generated elsewhere: JSONL of {"record_id", "output"}
    python -m verl_rec.evaluate --records data/esci/test.parquet --backend lucene \\
        --index data/esci/index_lucene --outputs gpt4o=gpt4o.jsonl --out results/esci_gpt4o

Systems: ``--raw`` (the default when no other is given; seqrec: the history titles as the
query; rerank: the first-stage order from the ``.candidates.jsonl`` sidecar, else the listed
order), ``--outputs NAME=FILE`` and ``--model NAME=PATH`` (greedy; vLLM when importable, else
transformers), each repeatable. Outputs are scored by the reward's scorer with the task's
prompt format (``verl_rec.tasks.formats.TASK_FORMATS``: search bm25_query, seqrec
seqrec_query, rerank rerank; ``--prompt-format`` to change, e.g. ``paper_sparse`` for a model
trained with the paper recipes) and format rule (``--format-rule released|strict``); a
malformed or missing output scores 0 and is counted (a re-ranked list must be a permutation
of the record's candidate ids). ``--model`` renders each prompt as the rollout does: chat
template plus the format's pre-filled assistant turn (``paper_*`` formats), and its outputs
are read as continuations of it (``--no-think-prefilled`` for outputs made without it).
A query the engine refuses scores 0 and is counted in ``retrieval_errors``.
``--samples N`` also scores each ``--model`` on N sampled outputs per record (``--temperature``,
``--top-p``, ``--seed``; default the recipes' rollout sampling) as the system ``<name>@sampled``:
its rows are ``<record_id>#<k>``, and its means are over records and samples.

An agent prompt format (``--prompt-format bm25_agent``) runs each ``--model`` as a search agent
(:mod:`verl_rec.evaluation.agent`): multi-turn episodes with the search tool of training
(``--tool-config``, ``--max-searches``; result titles from ``--doc-texts`` or the index's corpus),
scored on the final answer; the table adds searches per query (0 for the single-turn systems)
and ``episodes_<name>.jsonl`` keeps every episode's calls.

Metrics (``--metrics`` to change): search NDCG@10/20/100 + Recall@100; seqrec NDCG and
Recall @10 and @50; rerank NDCG@10. Grouped by data_source (the test domain) plus an ALL
row. Writes to --out: results.md (printed), results.csv, per_query.csv, results.json,
outputs_<name>.jsonl for --model systems, and results.png with --plot.
"""

from __future__ import annotations

import argparse
import sys

from verl_rec.errors import InputError
from verl_rec.evaluation.run import EvaluationRun, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m verl_rec.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", nargs="+", required=True, help="task-record parquet files (e.g. test.parquet)")
    parser.add_argument("--out", required=True, help="output folder for the tables and files")
    parser.add_argument("--backend", default="lucene", help="retriever backend for search/seqrec records")
    parser.add_argument("--index", help="retriever index (needed for search/seqrec records)")
    parser.add_argument("--backend-options", default="{}", help='JSON options for open_retriever, e.g. {"heap": "4g"}')
    parser.add_argument("--raw", action="store_true", help="score the raw-query baseline (default when no other system)")
    parser.add_argument("--outputs", action="append", default=[], metavar="NAME=FILE", help="JSONL of {record_id, output}")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="generate outputs with this model")
    parser.add_argument("--prompt-format", help="prompt format of the outputs (default per task)")
    parser.add_argument("--think-prefilled", action=argparse.BooleanOptionalAction, default=None,
                        help="outputs continue a pre-filled <think> (default: as the prompt format pre-fills)")
    parser.add_argument("--format-rule", choices=["released", "strict"], default="released",
                        help="released: the released Rec-R1 acceptance (text outside the tags allowed); strict: ours")
    parser.add_argument("--max-query-words", type=int, help="queries longer than this are format failures")
    parser.add_argument("--metrics", help="comma list for every task, e.g. ndcg@10,recall@100 (default: the paper's)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--gen-batch-size", type=int, default=16, help="prompts per transformers generate() call")
    parser.add_argument("--engine", choices=["auto", "vllm", "transformers"], default="auto")
    parser.add_argument("--samples", type=int, default=0,
                        help="also score each --model on this many sampled outputs per record (<name>@sampled)")
    parser.add_argument("--temperature", type=float, default=0.6, help="--samples: sampling temperature")
    parser.add_argument("--top-p", type=float, default=0.95, help="--samples: nucleus sampling")
    parser.add_argument("--seed", type=int, default=0, help="--samples: the sampling seed")
    parser.add_argument("--max-searches", type=int, default=3,
                        help="agent formats: searches per episode (the recipe's multi_turn.max_user_turns)")
    parser.add_argument("--tool-config", help="agent formats: the search tool yaml (default: the packaged one)")
    parser.add_argument("--doc-texts", help="agent formats: corpus JSONL for result titles (default: the index's corpus)")
    parser.add_argument("--limit", type=int, help="first N records only (smoke runs)")
    parser.add_argument("--plot", action="store_true", help="also write results.png (bar chart)")
    parser.add_argument("--plot-metric", help="metric of the chart (default: each task's first)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(EvaluationRun(**vars(args)))
    except (InputError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
