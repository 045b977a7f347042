"""Task records: what the dataset files hold, independent of any prompt wording.

One record per training/eval example. Stored in parquet with these columns (the dataset
class renders the prompt at load time, so changing the prompt needs no re-preprocessing):

==============  =====================  =========================================
column          type                   meaning
==============  =====================  =========================================
``record_id``   string                 stable id of the example
``data_source`` string                 e.g. ``esci_bm25/Video_Games`` (logged per source)
``task``        string                 ``search`` | ``seqrec`` | ``rerank``
``query``       string (may be empty)  the user's query (search, rerank)
``history``     list<string>           titles of past purchases, oldest first (seqrec);
                                       a JSON string of the list is read too
``candidates``  list<struct{id,text}>  candidates to re-rank (rerank); a JSON string
                                       of the list is read too
``qrels``       string (JSON)          ``{doc_id: gain}``: JSON keeps Arrow from turning
                                       per-row dicts into a union struct (read by
                                       :func:`verl_rec.qrels.parse_qrels`)
``split``       string                 train | val | test
==============  =====================  =========================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from verl_rec.qrels import parse_qrels

REQUIRED_COLUMNS = ("record_id", "data_source", "task", "qrels")
TASKS = ("search", "seqrec", "rerank")


def _sequence(value: Any, where: str, column: str) -> Sequence[Any]:
    """A list column as a sequence: Arrow gives lists, pandas numpy arrays, a missing value None,
    and a file written by hand or through JSON may hold the list as a JSON string."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value) if str(value).strip() else []
        except ValueError as exc:
            raise ValueError(f"{where}: column {column!r} is a string that is not a JSON list ({exc}): {str(value)[:80]!r}") from None
    if isinstance(value, Mapping) or not hasattr(value, "__iter__"):
        raise ValueError(f"{where}: column {column!r} must be a list, got {type(value).__name__}: {str(value)[:80]!r}")
    return list(value)


def _candidate(value: Any, where: str, position: int) -> Candidate:
    if isinstance(value, Mapping) and "id" in value and "text" in value:
        return Candidate(str(value["id"]), str(value["text"]))
    raise ValueError(f"{where}: column 'candidates' item {position} must be an object with 'id' and 'text', "
                     f"got {str(value)[:80]!r}")


@dataclass(frozen=True)
class Candidate:
    id: str
    text: str


@dataclass(frozen=True)
class TaskRecord:
    record_id: str
    data_source: str
    task: str
    qrels: dict[str, float]
    query: str = ""
    history: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    split: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The parquet row of this record."""
        return {
            "record_id": self.record_id,
            "data_source": self.data_source,
            "task": self.task,
            "query": self.query,
            "history": list(self.history),
            "candidates": [{"id": c.id, "text": c.text} for c in self.candidates],
            "qrels": json.dumps(self.qrels, sort_keys=True),
            "split": self.split,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], where: str = "row") -> TaskRecord:
        """Parse a parquet row; a bad row fails naming ``where`` and the column."""
        missing = [c for c in REQUIRED_COLUMNS if row.get(c) is None]
        if missing:
            raise ValueError(f"{where}: missing column(s) {missing}; task records need {list(REQUIRED_COLUMNS)}")
        if row["task"] not in TASKS:
            raise ValueError(f"{where}: column 'task' is {row['task']!r}, expected one of {TASKS}")
        qrels = parse_qrels(row["qrels"], what=f"{where}: column 'qrels'")
        candidates = _sequence(row.get("candidates"), where, "candidates")
        history = _sequence(row.get("history"), where, "history")
        return cls(
            record_id=str(row["record_id"]),
            data_source=str(row["data_source"]),
            task=str(row["task"]),
            qrels=qrels,
            query=str(row.get("query") or ""),
            history=tuple(str(h) for h in history),
            candidates=tuple(_candidate(c, where, i) for i, c in enumerate(candidates)),
            split=str(row.get("split") or "train"),
        )
