"""Task-record parquet files: the one writer (every builder) and reader (the evaluation, the dev
kit, the tests), with the schema of :mod:`verl_rec.tasks.records`.

A reader fails with the file, the row and the column at fault: an evaluation that silently
skipped a malformed row would report a number over the wrong set.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from verl_rec.errors import InputError
from verl_rec.tasks.records import REQUIRED_COLUMNS, TaskRecord


def write_records(records: list[TaskRecord], path: Path) -> None:
    """Parquet with the task-record schema (empty files keep the columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("record_id", pa.string()), ("data_source", pa.string()), ("task", pa.string()), ("query", pa.string()),
        ("history", pa.list_(pa.string())),
        ("candidates", pa.list_(pa.struct([("id", pa.string()), ("text", pa.string())]))),
        ("qrels", pa.string()), ("split", pa.string()),
    ])
    table = pa.Table.from_pylist([r.to_row() for r in records], schema=schema)
    pq.write_table(table, path)


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
