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
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from verl_rec.agent.episode import Episode
from verl_rec.errors import InputError
from verl_rec.evaluation import report
from verl_rec.evaluation.inputs import read_outputs, write_episodes, write_outputs
from verl_rec.evaluation.scoring import (
    DEFAULT_METRICS,
    prepare_outputs,
    prepare_raw,
    reward_specs,
    score_system,
    summarize,
)
from verl_rec.metrics import parse_metric
from verl_rec.tasks.formats import FORMATS, TASK_FORMATS, FormatSpec, get_format
from verl_rec.tasks.record_files import read_many
from verl_rec.tasks.records import TaskRecord


def _named(value: str, flag: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path is named after its file or folder."""
    name, sep, path = value.partition("=")
    if sep and name and "/" not in name:
        return name, path
    return Path(value.rstrip("/")).stem or flag, value


def format_specs(tasks: set[str], prompt_format: str | None, think_prefilled: bool | None,
                 max_query_words: int | None, format_rule: str = "released") -> dict[str, FormatSpec]:
    """The FormatSpec each task's outputs are checked with (``think_prefilled=None``: as the
    format pre-fills)."""
    specs = {}
    for task in tasks:
        fmt = get_format(prompt_format or TASK_FORMATS[task])
        if fmt.task != task:
            raise InputError(f"--prompt-format {fmt.name!r} is for {fmt.task} records, but the records hold {task}")
        specs[task] = fmt.spec_for(think_prefilled, max_query_words, format_rule)
    return specs


def model_outputs(records: Sequence[TaskRecord], model_path: str, prompt_format: str | None, args: argparse.Namespace,
                  sampling: Any = None) -> dict[str, str]:
    """One greedy output per record with the model at ``model_path`` (prompt + pre-fill), keyed by
    record id; with ``sampling`` (a :class:`~verl_rec.evaluation.generate.Sampling`), its ``n``
    samples per record, keyed ``<record_id>#<k>`` (:func:`sampled_records`)."""
    from verl_rec.evaluation.generate import generate_samples

    formats = [get_format(prompt_format or TASK_FORMATS[r.task]) for r in records]
    conversations = [fmt.messages(r) for fmt, r in zip(formats, records)]
    started = time.perf_counter()
    texts, engine = generate_samples(model_path, conversations, sampling, max_new_tokens=args.max_new_tokens,
                                     batch_size=args.gen_batch_size, engine=args.engine, formats=formats)
    print(f"generated {sum(map(len, texts))} outputs with {engine} in {time.perf_counter() - started:.1f}s",
          file=sys.stderr)
    if sampling is None:
        return {r.record_id: t[0] for r, t in zip(records, texts)}
    return {f"{r.record_id}#{k}": text for r, t in zip(records, texts) for k, text in enumerate(t)}


def sampled_records(records: Sequence[TaskRecord], n: int) -> list[TaskRecord]:
    """Each record ``n`` times, as ``<record_id>#<k>``: the rows a sampled system is scored on."""
    from dataclasses import replace

    return [replace(r, record_id=f"{r.record_id}#{k}") for r in records for k in range(n)]


def agent_model_outputs(records: Sequence[TaskRecord], model_path: str, args: argparse.Namespace,
                        retriever: Any) -> tuple[dict[str, str], dict[str, Episode]]:
    """Run the agent checkpoint at ``model_path``: its final answers, and each record's episode."""
    from verl_rec.evaluation.agent import ChatGenerator, local_search, run_episodes, tool_settings
    from verl_rec.recipes import package_file
    from verl_rec.retrieval.doc_texts import DocTexts

    if retriever is None:
        raise InputError("an agent format searches: give --index (and --backend)")
    settings = tool_settings(args.tool_config or package_file("recipes/tools/search_tool.yaml"))
    doc_texts = DocTexts.from_corpus(doc_text_path(args))
    generator = ChatGenerator(model_path, engine=args.engine, max_new_tokens=args.max_new_tokens,
                              batch_size=args.gen_batch_size)
    started = time.perf_counter()
    episodes = run_episodes(records, args.prompt_format, generator.render, generator, local_search(retriever, doc_texts),
                            settings, args.max_searches, generator.count_tokens)
    print(f"ran {len(episodes)} agent episodes with {generator.engine} in {time.perf_counter() - started:.1f}s",
          file=sys.stderr)
    return ({r.record_id: e.final_text for r, e in zip(records, episodes)},
            {r.record_id: e for r, e in zip(records, episodes)})


def doc_text_path(args: argparse.Namespace) -> str:
    """``--doc-texts``, else the corpus the index was built from (its metadata records it)."""
    if args.doc_texts:
        return args.doc_texts
    from verl_rec.retrieval.index_metadata import read_index_metadata

    corpus = (read_index_metadata(args.index) or {}).get("corpus_path")
    if not corpus:
        raise InputError(f"{args.index} does not record its corpus: give --doc-texts (the corpus JSONL) for the "
                         "titles an agent's searches show")
    return corpus


def first_stage_orders(record_paths: Sequence[str]) -> dict[str, Any]:
    """Rerank sidecar rows (the first-stage order) of every records file that has one, by record id."""
    from verl_rec.builders.rerank import read_sidecar

    first_stage: dict[str, Any] = {}
    for path in record_paths:
        first_stage.update(read_sidecar(path) or {})
    return first_stage


def agent_format(args: argparse.Namespace) -> bool:
    fmt = FORMATS.get(args.prompt_format or "")
    return fmt is not None and fmt.searches


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


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Score every system; write the reports; return the summary rows."""
    records, repeats = read_many(args.records)
    if repeats:
        print(f"note: {repeats} records appear in several --records files; each is scored once", file=sys.stderr)
    if args.limit:
        records = records[: args.limit]
    if not records:
        raise InputError(f"no records in {args.records}")
    tasks = {r.task for r in records}
    if args.metrics:
        chosen = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
        if not chosen:
            raise InputError(f"--metrics {args.metrics!r} names no metric")
        for spec in chosen:
            parse_metric(spec)
        metrics = {task: chosen for task in tasks}
    else:
        metrics = {task: DEFAULT_METRICS[task] for task in tasks}
    formats = format_specs(tasks, args.prompt_format, args.think_prefilled, args.max_query_words, args.format_rule)
    rewards = reward_specs(metrics)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    systems: list[tuple[str, Any]] = []
    if args.raw or not (args.outputs or args.model):
        systems.append(("raw", None))
    systems += [(name, ("outputs", path)) for name, path in (_named(v, "outputs") for v in args.outputs)]
    for name, path in (_named(v, "model") for v in args.model):
        systems.append((name, ("model", path)))
        if args.samples > 0:
            if agent_format(args):
                raise InputError("--samples is for single-turn formats; an agent format runs greedy episodes")
            systems.append((f"{name}@sampled", ("sampled", path)))
    names = [name for name, _ in systems]
    if len(set(names)) != len(names):
        raise InputError(f"system names must differ: {names}; name them NAME=PATH")

    retriever = None
    if tasks & {"search", "seqrec"}:
        if not args.index:
            raise InputError("search/seqrec records need a retriever: give --index (and --backend)")
        from verl_rec.retrieval.registry import open_retriever

        retriever = open_retriever(args.backend, args.index, **json.loads(args.backend_options))
    summary: list[dict[str, Any]] = []
    per_query: list[dict[str, Any]] = []
    agent = agent_format(args)
    episodes: dict[str, Episode] = {}
    try:
        for name, source in systems:
            started = time.perf_counter()
            missing: set[str] = set()
            scored = records
            if source is None:
                pendings = prepare_raw(records, first_stage_orders(args.records), formats, rewards)
            else:
                kind, path = source
                if kind == "outputs":
                    outputs = read_outputs(path)
                elif kind == "sampled":
                    from verl_rec.evaluation.generate import Sampling

                    sampling = Sampling(args.samples, args.temperature, args.top_p, args.seed)
                    outputs = model_outputs(records, path, args.prompt_format, args, sampling)
                    write_outputs(out / f"outputs_{name}.jsonl", outputs)
                    scored = sampled_records(records, args.samples)
                elif agent:
                    outputs, episodes = agent_model_outputs(records, path, args, retriever)
                    write_episodes(out / f"episodes_{name}.jsonl", episodes)
                    write_outputs(out / f"outputs_{name}.jsonl", outputs)
                else:
                    outputs = model_outputs(records, path, args.prompt_format, args)
                    write_outputs(out / f"outputs_{name}.jsonl", outputs)
                pendings = prepare_outputs(scored, outputs, formats, rewards)
                missing = {r.record_id for r in scored if r.record_id not in outputs}
            rows = score_system(scored, pendings, retriever, missing)
            if agent:  # searches per query, next to the single-turn systems (which search 0 times)
                for row in rows:
                    episode = episodes.get(row["record_id"])
                    row["searches"] = episode.searches if episode else 0
            episodes = {}
            per_query += [{"system": name, **row} for row in rows]
            summary += summarize(name, rows, metrics)
            print(f"scored {name}: {len(rows)} records in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    finally:
        if retriever is not None:
            retriever.close()

    table = report.markdown(summary, metrics)
    (out / "results.md").write_text(table, encoding="utf-8")
    report.write_csv(out / "results.csv", summary, first=report.SUMMARY_COLUMNS)
    report.write_csv(out / "per_query.csv", per_query, first=("system", "record_id", "task", "data_source"))
    (out / "results.json").write_text(json.dumps({"settings": {k: v for k, v in vars(args).items()}, "metrics": metrics,
                                                  "summary": summary}, indent=2, default=str) + "\n", encoding="utf-8")
    if args.plot:
        report.bar_chart(out / "results.png", summary, metrics, args.plot_metric)
    print(table)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (InputError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
