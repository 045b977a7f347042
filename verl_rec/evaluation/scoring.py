"""Score a set of task records under one "system" (raw query, generated outputs) with a retriever.

A system gives, per record, either a well-formed answer (a query string, or a re-ranked id
list) or a format failure. Search and seqrec answers are sent to the retriever, depth = the
deepest cutoff, as one batched call over the distinct queries; a re-ranked list IS the
ranking. Metrics are :func:`verl_rec.metrics.evaluate` (trec_eval's conventions). A format
failure, or a record with no output, scores 0 on every metric and is counted: averages are
always over ALL records of a data source, so a model cannot gain by failing on hard ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from verl_rec.metrics import evaluate, parse_metric
from verl_rec.reward.parsing import FormatSpec, parse_output
from verl_rec.tasks.records import TaskRecord

#: the paper's evaluation metrics per task
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "search": ("ndcg@10", "ndcg@20", "ndcg@100", "recall@100"),
    "seqrec": ("ndcg@10", "ndcg@50", "recall@10", "recall@50"),
    "rerank": ("ndcg@10",),
}
#: the prompt format a task's outputs are parsed with unless told otherwise
DEFAULT_FORMATS = {"search": "bm25_query", "seqrec": "seqrec_query", "rerank": "rerank"}
MISSING_OUTPUT = "missing_output"


@dataclass(frozen=True)
class Answer:
    """One record's answer under one system: ``value`` (query or id list) or ``error``."""

    value: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def words(self) -> int:
        """Words of a query, items of a list."""
        if isinstance(self.value, str):
            return len(self.value.split())
        return len(self.value) if isinstance(self.value, (list, tuple)) else 0


def raw_answer(record: TaskRecord, first_stage: Optional[Mapping[str, Any]] = None) -> Answer:
    """The no-model baseline: the record's own query; seqrec: the history titles; rerank: the
    first-stage order when its sidecar row is given, else the (shuffled) listed order."""
    if record.task == "search":
        return Answer(record.query)
    if record.task == "seqrec":
        return Answer(" ".join(record.history))
    if first_stage is not None:
        return Answer(list(first_stage["first_stage"]))
    return Answer([c.id for c in record.candidates])


def parsed_answers(records: Sequence[TaskRecord], outputs: Mapping[str, str], specs: Mapping[str, FormatSpec]) -> dict[str, Answer]:
    """Answers from generated outputs, parsed with the spec of each record's task."""
    answers = {}
    for record in records:
        text = outputs.get(record.record_id)
        if text is None:
            answers[record.record_id] = Answer(error=MISSING_OUTPUT)
            continue
        parsed = parse_output(text, specs[record.task])
        answers[record.record_id] = Answer(parsed.answer) if parsed.ok else Answer(error=parsed.error.value)
    return answers


def retrieve(queries: Sequence[str], retriever: Any, depth: int, batch_size: int = 256) -> dict[str, list[str]]:
    """Ranked ids of each distinct query (one retriever call per batch)."""
    from tqdm import tqdm

    unique = list(dict.fromkeys(queries))
    rankings: dict[str, list[str]] = {}
    for start in tqdm(range(0, len(unique), batch_size), desc="retrieve", unit="batch", file=sys.stderr,
                      mininterval=2, disable=len(unique) <= batch_size):
        batch = unique[start:start + batch_size]
        for query, hits in zip(batch, retriever.search(batch, k=depth)):
            rankings[query] = list(hits.ids)
    return rankings


def score_system(records: Sequence[TaskRecord], answers: Mapping[str, Answer], metrics: Mapping[str, Sequence[str]],
                 retriever: Any = None, batch_size: int = 256) -> list[dict[str, Any]]:
    """Per-record rows: record_id, task, data_source, format_ok, error, query_words, one key per metric."""
    needs_retrieval = [r for r in records if r.task in ("search", "seqrec") and answers[r.record_id].ok]
    rankings: dict[str, list[str]] = {}
    if needs_retrieval:
        if retriever is None:
            raise ValueError("search/seqrec records need a retriever (--backend and --index)")
        depth = max(parse_metric(m)[1] for r in needs_retrieval for m in metrics[r.task])
        rankings = retrieve([answers[r.record_id].value for r in needs_retrieval], retriever, depth, batch_size)
    rows = []
    for record in records:
        answer = answers[record.record_id]
        specs = metrics[record.task]
        if not answer.ok:
            values = {m: 0.0 for m in specs}
        else:
            ranking = answer.value if record.task == "rerank" else rankings[answer.value]
            values = evaluate(ranking, record.qrels, specs)
        rows.append({"record_id": record.record_id, "task": record.task, "data_source": record.data_source,
                     "format_ok": answer.ok, "error": answer.error, "query_words": answer.words if answer.ok else None,
                     **values})
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
        summary["mean_query_words"] = sum(m["query_words"] for m in ok) / len(ok) if ok else float("nan")
        out.append(summary)
    return out
