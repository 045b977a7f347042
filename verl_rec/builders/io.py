"""Reading release files with errors that name the file and the column.

Release files are read as they are published: parquet, CSV or JSON Lines, optionally
compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``: the McAuley-lab hosting serves ``.csv.gz`` /
``.jsonl.gz``). Ids must stay strings: pandas' type inference turns an all-digit id column
(ISBN-10 ASINs such as ``"0439708184"``) into integers and drops the leading zero, so JSON
keeps the types written in the file and CSV columns can be pinned with ``dtype``. Large JSON
Lines files (item pools, metadata) are streamed line by line with :func:`iter_jsonl`.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pandas as pd

from verl_rec.errors import InputError
from verl_rec.jsonl import json_objects

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


def table_kind(path: str | Path) -> str:
    """The data suffix of ``path`` with any compression suffix removed (``x.csv.gz`` -> ``.csv``)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    while suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def read_table(
    path: str | Path,
    columns: Iterable[str],
    what: str,
    dtype: Mapping[str, Any] | None = None,
    nrows: int | None = None,
) -> pd.DataFrame:
    """Read a parquet/csv/jsonl file and check that ``columns`` are present.

    ``dtype`` pins CSV columns (e.g. ``{"item_id": str}``); in CSV only an empty field is
    missing (``"NA"`` or ``"None"`` are kept as text). ``nrows`` reads the first rows only.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist; download it from the official release or pass --help")
    kind = table_kind(path)
    try:
        if kind == ".parquet":
            frame = pd.read_parquet(path)
            if nrows is not None:
                frame = frame.head(nrows)
        elif kind in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if kind == ".tsv" else ",", dtype=dict(dtype) if dtype else None,
                                nrows=nrows, keep_default_na=False, na_values=[""])
        elif kind in (".jsonl", ".json"):
            frame = pd.read_json(path, lines=kind == ".jsonl", dtype=False, nrows=nrows if kind == ".jsonl" else None)
        else:
            raise InputError(f"{path}: unsupported file type {kind!r} for {what}; expected .parquet, .csv or .jsonl")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read {what} ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: {what} lacks column(s) {missing}; found {list(frame.columns)}")
    return frame


def require_type(frame: pd.DataFrame, path: str | Path, column: str, kind: str) -> None:
    """Fail when ``column`` does not hold ``kind`` values (``"string"``, ``"integer"`` or ``"number"``)."""
    series = frame[column].dropna()
    if kind == "string":
        ok = bool(series.map(lambda v: isinstance(v, str)).all())
    elif kind == "number":
        ok = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    else:
        ok = pd.api.types.is_integer_dtype(series) or (
            pd.api.types.is_float_dtype(series) and bool((series == series.round()).all())
        )
    if not ok:
        raise InputError(f"{path}: column {column!r} must hold {kind} values, got dtype {frame[column].dtype}")


# -- JSON Lines, streamed: item pools and metadata files are too large for a DataFrame ---------

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}

#: accepted JSON types per documented field type
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "list": (list,),
    "number": (int, float),
    "object": (dict,),
}


def open_text(path: Path) -> IO[str]:
    """Open a (possibly compressed) text file for reading as UTF-8."""
    opener = _OPENERS.get(path.suffix.lower())
    if opener is not None:
        return opener(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_jsonl(path: str | Path, what: str, required: Mapping[str, str],
               optional: Mapping[str, str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_no, object)``; ``required`` fields must be present and non-null.

    ``required``/``optional`` map a field to ``"string"``, ``"list"``, ``"number"`` or
    ``"object"``; a present, non-null value of another type fails naming the line and field.
    Optional fields may be null, but each must appear in at least one line: a file that never
    has one is another schema (checked when the file has been read to the end).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file {path} does not exist; download it from the official release or pass --help")
    optional = optional or {}
    unseen = set(optional)
    with open_text(path) as handle:
        for line_no, obj in json_objects(handle, path, f"{what} line", InputError):
            for name in required:
                if obj.get(name) is None:
                    raise InputError(f"{path}:{line_no}: {what} lacks column {name!r} (required: {sorted(required)})")
            for name, kind in {**required, **optional}.items():
                value = obj.get(name)
                if value is not None and (not isinstance(value, _TYPES[kind]) or isinstance(value, bool)):
                    raise InputError(f"{path}:{line_no}: {what} column {name!r} must be a {kind}, "
                                     f"got {type(value).__name__} {str(value)[:60]!r}")
            if unseen:
                unseen -= obj.keys()
            yield line_no, obj
    if unseen:
        raise InputError(f"{path}: {what} lacks column(s) {sorted(unseen)} on every line; is this the right file?")


def clean_text(value: Any) -> str:
    """One line of text from a string or a list of strings (whitespace collapsed)."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v is not None)
    return " ".join(str(value).split())


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
