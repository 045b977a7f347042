"""Reading and writing what an evaluation consumes and keeps: generated outputs, agent episodes.

Every reader fails with the file, the line or row, and the column at fault, because an
evaluation that silently skips a malformed row reports a number over the wrong set.
"""

from __future__ import annotations

import json
from pathlib import Path

from verl_rec.errors import InputError
from verl_rec.jsonl import json_objects


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
