"""Reading release files with errors that name the file and the column."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd


class InputError(ValueError):
    """A missing or malformed input file; the message says which file, which column, what to do."""


def read_table(path: str | Path, columns: Iterable[str], what: str) -> pd.DataFrame:
    """Read a parquet/csv/jsonl file and check that ``columns`` are present."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist; download it from the official release or pass --help")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
        elif path.suffix in (".jsonl", ".json"):
            frame = pd.read_json(path, lines=path.suffix == ".jsonl")
        else:
            raise InputError(f"{path}: unsupported file type {path.suffix!r} for {what}")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read {what} ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: {what} lacks column(s) {missing}; found {list(frame.columns)}")
    return frame


def require_type(frame: pd.DataFrame, path: str | Path, column: str, kind: str) -> None:
    """Fail when ``column`` does not hold ``kind`` values (``"string"`` or ``"integer"``)."""
    series = frame[column].dropna()
    if kind == "string":
        ok = bool(series.map(lambda v: isinstance(v, str)).all())
    else:
        ok = pd.api.types.is_integer_dtype(series) or (
            pd.api.types.is_float_dtype(series) and bool((series == series.round()).all())
        )
    if not ok:
        raise InputError(f"{path}: column {column!r} must hold {kind} values, got dtype {frame[column].dtype}")
