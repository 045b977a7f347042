"""Per-query held-out scores: the raw request and the terse query (no model), and each run's
validation dumps, for the seen and the unseen phrasings of the same 40 queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.learn.settings import METRIC, SPLITS
from verl_rec.agent.protocol import close_prefilled_call, parse_tool_calls
from verl_rec.devkit.heldout import dumped_rows, dumped_values, query_ndcg, raw_request_ndcg
from verl_rec.reward.parsing import parse_output
from verl_rec.tasks.formats import SEARCH_CALL_PREFILL, SHORT_ANSWER_PREFILL, get_format
from verl_rec.tasks.records import TaskRecord

SPLIT_FILES = {"seen": "test.parquet", "unseen": "test_unseen.parquet"}
#: what both systems' scored answers are read with: the rewrite's one turn and the agent's final turn
#: continue the same answer pre-fill (tests/test_formats.py checks that the two specs are equal)
ANSWER_SPEC = get_format("bm25_literature_short").spec


@dataclass(frozen=True)
class Split:
    """One held-out file: its records, and the per-query NDCG@10 of the raw request and of the
    collection's own terse query (the expert query the verbose request was written around)."""

    name: str
    records: tuple[TaskRecord, ...]
    raw: dict[str, float]
    terse: dict[str, float]


def query_id(record: TaskRecord) -> str:
    """The collection's query id behind a record (``<qid>-t<k>`` seen, ``<qid>-u<k>`` unseen)."""
    return re.split(r"-[tu]\d+$", record.record_id)[0]


def terse_query_ndcg(task: Path, records: tuple[TaskRecord, ...]) -> dict[str, float]:
    """``{record_id: NDCG@10}`` of BM25 on the collection's query text of each record."""
    import json

    from verl_rec.builders.requests import topic_text
    from verl_rec.retrieval.trec import read_trec_topics

    topics = read_trec_topics(json.loads((task / "manifest.json").read_text())["settings"]["topics"])
    return query_ndcg(records, [topic_text(topics[query_id(r)]) for r in records], task / "index_lucene")


def load_splits(task: Path) -> dict[str, Split]:
    """Both held-out files, each checked to hold only its own data source."""
    from verl_rec.tasks.record_files import read_records

    splits = {}
    for name, file in SPLIT_FILES.items():
        records = tuple(read_records(task / file))
        wrong = sorted({r.data_source for r in records} - {SPLITS[name]})
        if wrong:
            raise ValueError(f"{task / file}: data source {wrong}, expected only {SPLITS[name]!r}: rebuild the task")
        splits[name] = Split(name, records, raw_request_ndcg(records, task / "index_lucene"),
                             terse_query_ndcg(task, records))
    return splits


def searched_queries(output: str) -> list[str]:
    """The queries of the search calls in one dumped agent episode, in order, read as the training
    loop reads them (:func:`~verl_rec.agent.protocol.close_prefilled_call`, the Hermes parse)."""
    _, calls = parse_tool_calls(close_prefilled_call(output))
    return [str(c.arguments.get("query")) for c in calls if isinstance(c.arguments, dict)]


def final_query(output: str) -> str | None:
    """The query the reward read from an answer (None: malformed): the text after the last answer
    pre-fill (the agent's final turn), or all of it (the rewrite's turn), parsed with the reward's parser."""
    parsed = parse_output(output.rsplit(SHORT_ANSWER_PREFILL, 1)[-1], ANSWER_SPEC)
    return parsed.answer if parsed.ok else None


def dump_scores(dump: Path, splits: dict[str, Split]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per split, per record: NDCG@10, format_ok, search calls (agent rows; 0 otherwise) and the output text."""
    records = [r for split in splits.values() for r in split.records]
    rows = dumped_rows(dump, records)
    ndcg, ok = dumped_values(rows, METRIC, dump), dumped_values(rows, "format_ok", dump)
    calls = {rid: float(row.get("search_calls", 0.0)) for rid, row in rows.items()}
    return {name: {r.record_id: {"ndcg": ndcg[r.record_id], "format_ok": ok[r.record_id], "calls": calls[r.record_id],
                                 "output": written(rows[r.record_id])} for r in split.records}
            for name, split in splits.items()}


def written(row: dict[str, Any]) -> str:
    """A dumped answer as the policy's turns read: a search agent's pre-filled call (the end of the
    prompt) put back in front, so that its first query parses."""
    output = row["output"]
    return SEARCH_CALL_PREFILL + output if row["input"].endswith(SEARCH_CALL_PREFILL) else output
