"""The JSONL corpus format shared by every index builder.

One JSON object per line. The id lives in ``id_field`` (default ``"id"``; ``"docid"`` is
accepted too) and the text is the concatenation of ``text_fields`` (default
``("contents",)``), joined by a newline. A bad line fails with the file and line number.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from verl_rec.jsonl import json_objects


class CorpusError(ValueError):
    """A corpus file that cannot be read as documented."""


@dataclass(frozen=True)
class CorpusFormat:
    id_field: str = "id"
    text_fields: tuple[str, ...] = ("contents",)

    @classmethod
    def of(cls, id_field: str = "id", text_fields: Sequence[str] | str = ("contents",)) -> CorpusFormat:
        if isinstance(text_fields, str):
            text_fields = (text_fields,)
        return cls(id_field=id_field, text_fields=tuple(text_fields))


def _text_of(record: dict, fmt: CorpusFormat) -> str:
    parts = []
    for name in fmt.text_fields:
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, list):
            value = " ".join(str(v) for v in value if v is not None)
        parts.append(str(value))
    return "\n".join(p for p in parts if p)


def iter_corpus(path: str | Path, fmt: CorpusFormat = CorpusFormat()) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)`` for every line of a JSONL corpus file."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist; build it with "
                          "python -m verl_rec.data_preprocess.<dataset> or pass the right path")
    seen_text_field = False
    with path.open("r", encoding="utf-8") as handle:
        for line_no, record in json_objects(handle, path, "corpus line", CorpusError):
            doc_id = record.get(fmt.id_field)
            if doc_id is None and fmt.id_field == "id":
                doc_id = record.get("docid")
            if doc_id is None or str(doc_id) == "":
                raise CorpusError(f"{path}:{line_no}: missing id field {fmt.id_field!r}")
            seen_text_field = seen_text_field or any(f in record for f in fmt.text_fields)
            yield str(doc_id), _text_of(record, fmt)
    if not seen_text_field:
        raise CorpusError(f"{path}: no line has any of the text fields {list(fmt.text_fields)}; set text_fields to the corpus' field names")
