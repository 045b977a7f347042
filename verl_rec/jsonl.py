"""Read JSON-lines files: one JSON object per non-blank line, with errors that name the line.

Corpora, raw dataset files, generated outputs and sidecars are all JSONL; a bad line must stop
the reader with the file and line number, whichever of them it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def json_objects(lines: Iterable[str], where: str | Path, what: str = "line",
                 error: type[Exception] = ValueError) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; ``error`` names ``where:line`` otherwise."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}:{line_no}: {what} is not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise error(f"{where}:{line_no}: {what} must be a JSON object, got {type(obj).__name__}")
        yield line_no, obj
