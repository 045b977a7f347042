"""One evaluation run: every system scored on the records, per test domain, and the reports written.

:class:`EvaluationRun` holds the options as the command line (:mod:`verl_rec.evaluate`) gives
them; ``results.json`` keeps them next to the numbers. :func:`run` reads the records, picks each
task's metrics and format, opens the retriever once, then scores each system in turn.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from verl_rec.agent.episode import Episode
from verl_rec.errors import InputError
from verl_rec.evaluation import report
from verl_rec.evaluation.inputs import read_outputs, write_episodes, write_outputs
from verl_rec.evaluation.systems import (
    DEFAULT_METRICS,
    first_stage_orders,
    prepare_outputs,
    prepare_raw,
    reward_specs,
    sampled_records,
    score_system,
    summarize,
)
from verl_rec.metrics import parse_metric
from verl_rec.tasks.formats import FORMATS, TASK_FORMATS, FormatSpec, get_format
from verl_rec.tasks.record_files import read_many
from verl_rec.tasks.records import TaskRecord

#: a system: its name, and where its outputs come from (None: the raw baseline; (kind, path) otherwise)
System = tuple[str, tuple[str, str] | None]


@dataclass
class EvaluationRun:
    """The options of one run, named and ordered as the command line's flags."""

    records: list[str]
    out: str
    backend: str = "lucene"
    index: str | None = None
    backend_options: str = "{}"  # JSON, as given
    raw: bool = False
    outputs: list[str] = field(default_factory=list)  # NAME=FILE
    model: list[str] = field(default_factory=list)  # NAME=PATH
    prompt_format: str | None = None
    think_prefilled: bool | None = None
    format_rule: str = "released"
    max_query_words: int | None = None
    metrics: str | None = None  # comma list, as given
    max_new_tokens: int = 512
    gen_batch_size: int = 16
    engine: str = "auto"
    samples: int = 0
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 0
    max_searches: int = 3
    tool_config: str | None = None
    doc_texts: str | None = None
    limit: int | None = None
    plot: bool = False
    plot_metric: str | None = None

    @property
    def searches(self) -> bool:
        """The outputs' prompt format is an agent format: ``--model`` systems run episodes."""
        fmt = FORMATS.get(self.prompt_format or "")
        return fmt is not None and fmt.searches


def named(value: str, flag: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path is named after its file or folder."""
    name, sep, path = value.partition("=")
    if sep and name and "/" not in name:
        return name, path
    return Path(value.rstrip("/")).stem or flag, value


def format_specs(tasks: Iterable[str], prompt_format: str | None, think_prefilled: bool | None,
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


def metric_specs(tasks: Iterable[str], chosen: str | None) -> dict[str, tuple[str, ...]]:
    """Each task's metrics: the comma list ``chosen`` for every task, else the paper's."""
    if not chosen:
        return {task: DEFAULT_METRICS[task] for task in tasks}
    specs = tuple(m.strip() for m in chosen.split(",") if m.strip())
    if not specs:
        raise InputError(f"--metrics {chosen!r} names no metric")
    for spec in specs:
        parse_metric(spec)
    return {task: specs for task in tasks}


def systems_of(options: EvaluationRun) -> list[System]:
    """The systems to score, in order: raw (the default when no other), outputs files, models."""
    systems: list[System] = []
    if options.raw or not (options.outputs or options.model):
        systems.append(("raw", None))
    systems += [(name, ("outputs", path)) for name, path in (named(v, "outputs") for v in options.outputs)]
    for name, path in (named(v, "model") for v in options.model):
        systems.append((name, ("model", path)))
        if options.samples > 0:
            if options.searches:
                raise InputError("--samples is for single-turn formats; an agent format runs greedy episodes")
            systems.append((f"{name}@sampled", ("sampled", path)))
    names = [name for name, _ in systems]
    if len(set(names)) != len(names):
        raise InputError(f"system names must differ: {names}; name them NAME=PATH")
    return systems


def read_run_records(options: EvaluationRun) -> list[TaskRecord]:
    records, repeats = read_many(options.records)
    if repeats:
        print(f"note: {repeats} records appear in several --records files; each is scored once", file=sys.stderr)
    if options.limit:
        records = records[: options.limit]
    if not records:
        raise InputError(f"no records in {options.records}")
    return records


def open_retriever_for(options: EvaluationRun, tasks: set[str]) -> Any:
    """The retriever of search and seqrec records (None for re-ranking only)."""
    if not tasks & {"search", "seqrec"}:
        return None
    if not options.index:
        raise InputError("search/seqrec records need a retriever: give --index (and --backend)")
    from verl_rec.retrieval.registry import open_retriever

    return open_retriever(options.backend, options.index, **json.loads(options.backend_options))


def system_outputs(options: EvaluationRun, name: str, source: tuple[str, str], records: Sequence[TaskRecord],
                   retriever: Any) -> tuple[dict[str, str], list[TaskRecord], dict[str, Episode]]:
    """A system's outputs by record id, the records they answer, and an agent's episodes;
    generated outputs (and episodes) are written to ``--out`` for re-scoring."""
    from verl_rec.evaluation.agent import AgentRun, agent_model_outputs
    from verl_rec.evaluation.generate import Sampling, model_outputs

    kind, path = source
    out = Path(options.out)
    if kind == "outputs":
        return read_outputs(path), list(records), {}
    episodes: dict[str, Episode] = {}
    scored = list(records)
    if kind == "sampled":
        sampling = Sampling(options.samples, options.temperature, options.top_p, options.seed)
        outputs = model_outputs(records, path, options.prompt_format, options.max_new_tokens, options.gen_batch_size,
                                options.engine, sampling)
        scored = sampled_records(records, options.samples)
    elif options.searches:
        agent = AgentRun(options.tool_config, options.max_searches, options.doc_texts, options.max_new_tokens,
                         options.gen_batch_size, options.engine)
        outputs, episodes = agent_model_outputs(records, path, options.prompt_format, agent, retriever, options.index)
        write_episodes(out / f"episodes_{name}.jsonl", episodes)
    else:
        outputs = model_outputs(records, path, options.prompt_format, options.max_new_tokens, options.gen_batch_size,
                                options.engine)
    write_outputs(out / f"outputs_{name}.jsonl", outputs)
    return outputs, scored, episodes


def write_reports(options: EvaluationRun, summary: list[dict[str, Any]], per_query: list[dict[str, Any]],
                  metrics: dict[str, tuple[str, ...]]) -> str:
    """results.md, results.csv, per_query.csv, results.json (and results.png with ``plot``); the table."""
    out = Path(options.out)
    table = report.markdown(summary, metrics)
    (out / "results.md").write_text(table, encoding="utf-8")
    report.write_csv(out / "results.csv", summary, first=report.SUMMARY_COLUMNS)
    report.write_csv(out / "per_query.csv", per_query, first=("system", "record_id", "task", "data_source"))
    (out / "results.json").write_text(json.dumps({"settings": asdict(options), "metrics": metrics, "summary": summary},
                                                 indent=2, default=str) + "\n", encoding="utf-8")
    if options.plot:
        report.bar_chart(out / "results.png", summary, metrics, options.plot_metric)
    return table


def run(options: EvaluationRun) -> list[dict[str, Any]]:
    """Score every system; write the reports; return the summary rows."""
    records = read_run_records(options)
    tasks = {r.task for r in records}
    metrics = metric_specs(tasks, options.metrics)
    formats = format_specs(tasks, options.prompt_format, options.think_prefilled, options.max_query_words,
                           options.format_rule)
    rewards = reward_specs(metrics)
    Path(options.out).mkdir(parents=True, exist_ok=True)
    systems = systems_of(options)
    retriever = open_retriever_for(options, tasks)
    summary: list[dict[str, Any]] = []
    per_query: list[dict[str, Any]] = []
    try:
        for name, source in systems:
            started = time.perf_counter()
            if source is None:
                scored, missing = records, set()
                pendings = prepare_raw(records, first_stage_orders(options.records), formats, rewards)
                episodes: dict[str, Episode] = {}
            else:
                outputs, scored, episodes = system_outputs(options, name, source, records, retriever)
                pendings = prepare_outputs(scored, outputs, formats, rewards)
                missing = {r.record_id for r in scored if r.record_id not in outputs}
            rows = score_system(scored, pendings, retriever, missing)
            if options.searches:  # searches per query, next to the single-turn systems (which search 0 times)
                for row in rows:
                    episode = episodes.get(row["record_id"])
                    row["searches"] = episode.searches if episode else 0
            per_query += [{"system": name, **row} for row in rows]
            summary += summarize(name, rows, metrics)
            print(f"scored {name}: {len(rows)} records in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    finally:
        if retriever is not None:
            retriever.close()
    print(write_reports(options, summary, per_query, metrics))
    return summary
