"""Reading what an evaluation consumes: task-record parquet files, generated outputs, TREC runs.

Every reader fails with the file, the line or row, and the column at fault, because an
evaluation that silently skips a malformed row reports a number over the wrong set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from verl_rec.data.io import InputError
from verl_rec.jsonl import json_objects
from verl_rec.tasks.records import REQUIRED_COLUMNS, TaskRecord


def read_records(path: str | Path) -> list[TaskRecord]:
    """All task records of one parquet file (the schema of :mod:`verl_rec.tasks.records`)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(f"task-record file {path} does not exist; build it with python -m verl_rec.data_preprocess.<dataset>")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise InputError(f"{path}: cannot read as parquet ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; task records need {list(REQUIRED_COLUMNS)}")
    records = []
    for index, row in enumerate(table.to_pylist()):
        try:
            records.append(TaskRecord.from_row(row, where=f"{path} row {index}"))
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return records


def read_many(paths: Iterable[str | Path]) -> tuple[list[TaskRecord], int]:
    """Records of several files, each record id once (first file wins); also the repeats skipped."""
    records: list[TaskRecord] = []
    seen: set[str] = set()
    repeats = 0
    for path in paths:
        for record in read_records(path):
            if record.record_id in seen:
                repeats += 1
                continue
            seen.add(record.record_id)
            records.append(record)
    return records, repeats


def read_outputs(path: str | Path) -> dict[str, str]:
    """``{record_id: output}`` from a JSONL of ``{"record_id", "output"}``; a repeated id is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"outputs file {path} does not exist")
    outputs: dict[str, str] = {}
    with path.open("r", encoding="utf-8") as handle:
        for line_no, obj in json_objects(handle, path, "outputs line", InputError):
            if "record_id" not in obj or "output" not in obj:
                raise InputError(f"{path}:{line_no}: expected an object with columns 'record_id' and 'output'")
            record_id = str(obj["record_id"])
            if record_id in outputs:
                raise InputError(f"{path}:{line_no}: column 'record_id' repeats {record_id!r}; one output per record")
            outputs[record_id] = "" if obj["output"] is None else str(obj["output"])
    return outputs


def write_outputs(path: str | Path, outputs: dict[str, str]) -> Path:
    """The JSONL that :func:`read_outputs` reads (generated outputs are kept for re-scoring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record_id, output in outputs.items():
            handle.write(json.dumps({"record_id": record_id, "output": output}, ensure_ascii=False) + "\n")
    return path


def write_episodes(path: str | Path, episodes: dict) -> Path:
    """An agent's episodes, one JSON line per record: ``{"record_id", "final_text", "calls", ...}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record_id, episode in episodes.items():
            handle.write(json.dumps({"record_id": record_id, **episode.to_dict()}, ensure_ascii=False) + "\n")
    return path


def read_run(path: str | Path) -> dict[str, list[str]]:
    """A TREC run (``qid Q0 docid rank score tag``) as ``{qid: [docid, ...]}``, best first.

    Hits are ordered by score descending, then rank ascending (trec_eval orders by score).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"run file {path} does not exist")
    hits: dict[str, list[tuple[float, int, str]]] = {}
    with path.open("r", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(f"{path}:{line_no}: expected 'qid Q0 docid rank score tag', got {line.strip()[:120]!r}")
            qid, _, docid, rank, score, _ = parts
            try:
                hits.setdefault(qid, []).append((-float(score), int(rank), docid))
            except ValueError:
                raise InputError(f"{path}:{line_no}: column rank must be an integer and score a number") from None
    return {qid: [doc for _, _, doc in sorted(rows)] for qid, rows in hits.items()}
