"""Score a set of task records under one "system" (raw query, generated outputs) with a retriever.

Scoring is the reward's own scorer (:mod:`verl_rec.reward.scorer`): a system gives, per record,
an output to check against the task's prompt format, or (the raw baseline) an answer; search
and seqrec answers go to the retriever as one search call per batch of the distinct queries,
to the deepest cutoff; a re-ranked list IS the ranking. Metrics follow trec_eval's conventions
(:mod:`verl_rec.metrics`). A format failure, or a record with no output, scores 0 on every
metric and is counted: averages are always over ALL records of a data source, so a model
cannot gain by failing on hard ones. A re-ranked list that is not a permutation of the
record's candidate ids is a format failure (``not_a_permutation``). A failed search raises: it
is not a miss; a query the engine refused scores 0 and is counted (``retrieval_errors``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from verl_rec.reward.contract import RewardSpec
from verl_rec.reward.parsing import ParsedOutput
from verl_rec.reward.scorer import Pending, prepare, prepare_answer, score_with_search
from verl_rec.tasks.formats import FormatSpec
from verl_rec.tasks.records import TaskRecord

#: the paper's evaluation metrics per task
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "search": ("ndcg@10", "ndcg@20", "ndcg@100", "recall@100"),
    "seqrec": ("ndcg@10", "ndcg@50", "recall@10", "recall@50"),
    "rerank": ("ndcg@10",),
}
MISSING_OUTPUT = "missing_output"
RETRIEVAL_ERROR = "retrieval_error"


def reward_specs(metrics: Mapping[str, Sequence[str]]) -> dict[str, RewardSpec]:
    """Per task, the reward spec whose logged metrics are the task's evaluation metrics."""
    return {task: RewardSpec(metric=specs[0], eval_metrics=tuple(specs[1:])) for task, specs in metrics.items()}


def raw_answer(record: TaskRecord, first_stage: Mapping[str, Any] | None = None) -> ParsedOutput:
    """The no-model baseline: the record's own query; seqrec: the history titles; rerank: the
    first-stage order when its sidecar row is given, else the (shuffled) listed order."""
    if record.task == "search":
        return ParsedOutput(answer=record.query)
    if record.task == "seqrec":
        return ParsedOutput(answer=" ".join(record.history))
    if first_stage is not None:
        return ParsedOutput(answer=list(first_stage["first_stage"]))
    return ParsedOutput(answer=[c.id for c in record.candidates])


def first_stage_orders(record_paths: Sequence[str]) -> dict[str, Any]:
    """Rerank sidecar rows (the first-stage order) of every records file that has one, by record id."""
    from verl_rec.builders.rerank import read_sidecar

    first_stage: dict[str, Any] = {}
    for path in record_paths:
        first_stage.update(read_sidecar(path) or {})
    return first_stage


def sampled_records(records: Sequence[TaskRecord], n: int) -> list[TaskRecord]:
    """Each record ``n`` times, as ``<record_id>#<k>``: the rows a sampled system is scored on."""
    return [replace(r, record_id=f"{r.record_id}#{k}") for r in records for k in range(n)]


def prepare_raw(records: Sequence[TaskRecord], first_stage: Mapping[str, Any], formats: Mapping[str, FormatSpec],
                specs: Mapping[str, RewardSpec]) -> list[Pending]:
    """The raw baseline of every record, ready to score (``first_stage``: rerank sidecar rows by record id)."""
    return [prepare_answer(raw_answer(r, first_stage.get(r.record_id)), r.qrels, formats[r.task], specs[r.task])
            for r in records]


def prepare_outputs(records: Sequence[TaskRecord], outputs: Mapping[str, str], formats: Mapping[str, FormatSpec],
                    specs: Mapping[str, RewardSpec]) -> list[Pending]:
    """Every record's output checked with its task's format; a missing output is an empty one.
    A re-ranked list must be a permutation of the record's candidate ids."""
    return [prepare(outputs.get(r.record_id), r.qrels, formats[r.task], specs[r.task],
                    [c.id for c in r.candidates] if r.task == "rerank" else None) for r in records]


def score_system(records: Sequence[TaskRecord], pendings: Sequence[Pending], retriever: Any = None,
                 missing: Collection[str] = (), batch_size: int = 256) -> list[dict[str, Any]]:
    """Per-record rows: record_id, task, data_source, format_ok, error, query_words, one key per
    metric. ``missing``: ids of the records that had no output (counted apart from format failures)."""
    search = None
    if any(p.query is not None for p in pendings):
        if retriever is None:
            raise ValueError("search/seqrec records need a retriever (--backend and --index)")
        search = retriever.search
    results = score_with_search(pendings, search, batch_size=batch_size, count_errors=False, progress=True)
    rows = []
    for record, pending, result in zip(records, pendings, results):
        ok = pending.parsed.ok
        error = "" if ok else MISSING_OUTPUT if record.record_id in missing else pending.parsed.error.value
        if ok and result.extra["retrieval_error"]:
            error = RETRIEVAL_ERROR
        rows.append({"record_id": record.record_id, "task": record.task, "data_source": record.data_source,
                     "format_ok": ok, "error": error, "query_words": int(result.extra["query_words"]) if ok else None,
                     **{m: result.extra[m] for m in pending.spec.metric_keys}})
    return rows


ALL_SOURCES = "ALL"


def summarize(system: str, rows: Sequence[Mapping[str, Any]], metrics: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """One row per (task, data_source), plus an ``ALL`` row per task spanning several sources."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["data_source"]), []).append(row)
    tasks = sorted({task for task, _ in groups})
    for task in tasks:
        sources = [key for key in groups if key[0] == task]
        if len(sources) > 1:
            groups[(task, ALL_SOURCES)] = [row for key in sources for row in groups[key]]
    out = []
    for (task, source), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] == ALL_SOURCES, kv[0][1])):
        n = len(members)
        ok = [m for m in members if m["format_ok"]]
        summary: dict[str, Any] = {"system": system, "task": task, "data_source": source, "n": n}
        for metric in metrics[task]:
            summary[metric] = sum(float(m[metric]) for m in members) / n
        summary["format_failures"] = n - len(ok)
        summary["format_failure_rate"] = (n - len(ok)) / n
        summary["missing_outputs"] = sum(1 for m in members if m["error"] == MISSING_OUTPUT)
        summary["retrieval_errors"] = sum(1 for m in members if m["error"] == RETRIEVAL_ERROR)
        summary["mean_query_words"] = sum(m["query_words"] for m in ok) / len(ok) if ok else float("nan")
        if all("searches" in m for m in members):  # an agent evaluation: searches per query
            summary["mean_searches"] = sum(m["searches"] for m in members) / n
        out.append(summary)
    return out
