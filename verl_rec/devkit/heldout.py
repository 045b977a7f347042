"""Per-query held-out NDCG@10 of the three systems the quickstart compares.

* the raw request: BM25 on exactly what the user wrote (no model);
* the untrained and the trained policy: veRL's own validation, dumped per sample by
  ``trainer.validation_data_dir`` (greedy decoding, every held-out record, the reward's metrics
  in each row), at the first and the last validation.

Rows of a dump are matched to records by the request text inside the prompt, so a record that
is missing, duplicated or matched twice fails loudly instead of skewing a paired comparison.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from verl_rec.tasks.records import TaskRecord

METRIC = "ndcg@10"


def raw_request_ndcg(records: Sequence[TaskRecord], index: Path, k: int = 10) -> dict[str, float]:
    """``{record_id: NDCG@k}`` of BM25 (Lucene) on each record's request as typed."""
    return query_ndcg(records, [r.query for r in records], index, k)


def query_ndcg(records: Sequence[TaskRecord], queries: Sequence[str], index: Path, k: int = 10) -> dict[str, float]:
    """``{record_id: NDCG@k}`` of BM25 (Lucene) on ``queries[i]`` for ``records[i]``."""
    from verl_rec.metrics import ndcg_at_k_batch
    from verl_rec.retrieval.registry import open_retriever

    retriever = open_retriever("lucene", str(index), heap="512m", threads=1)
    try:
        hits = retriever.search(list(queries), k)
    finally:
        retriever.close()
    scores = ndcg_at_k_batch([h.ids for h in hits], [r.qrels for r in records], k)
    return {r.record_id: float(s) for r, s in zip(records, scores)}


def match_record(prompt: str, records: Sequence[TaskRecord]) -> TaskRecord:
    """The one record whose request the prompt holds (the longest, if one request contains another)."""
    found = [r for r in records if r.query and r.query in prompt]
    if not found:
        raise ValueError(f"a validation prompt holds no held-out request: {prompt[-200:]!r}")
    longest = max(len(r.query) for r in found)
    best = [r for r in found if len(r.query) == longest]
    if len(best) > 1:
        raise ValueError(f"a validation prompt matches {len(best)} held-out requests: {[r.record_id for r in best]}")
    return best[0]


def dumped_rows(dump: Path, records: Sequence[TaskRecord]) -> dict[str, dict]:
    """``{record_id: dumped row}`` from one validation dump (``<step>.jsonl``); each record exactly once."""
    if not dump.is_file():
        raise FileNotFoundError(f"{dump}: no validation dump (trainer.validation_data_dir)")
    rows: dict[str, dict] = {}
    for number, line in enumerate(dump.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        record = match_record(row["input"], records)
        if record.record_id in rows:
            raise ValueError(f"{dump}:{number}: record {record.record_id} validated twice")
        rows[record.record_id] = {**row, "line": number}
    missing = {r.record_id for r in records} - set(rows)
    if missing:
        raise ValueError(f"{dump}: {len(missing)} held-out records not validated, e.g. {sorted(missing)[:3]}")
    return rows


def dumped_values(rows: dict[str, dict], key: str, dump: Path | str = "the dump") -> dict[str, float]:
    """``{record_id: float(row[key])}``; a row without ``key`` fails, naming the line."""
    values = {}
    for record_id, row in rows.items():
        if key not in row:
            raise KeyError(f"{dump}:{row.get('line')}: no {key!r} in the row (reward.reward_kwargs.eval_metrics)")
        values[record_id] = float(row[key])
    return values


def dumped_ndcg(dump: Path, records: Sequence[TaskRecord], metric: str = METRIC) -> dict[str, float]:
    """``{record_id: metric}`` from one validation dump (``<step>.jsonl``); each record exactly once."""
    return dumped_values(dumped_rows(dump, records), metric, dump)


def mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)
