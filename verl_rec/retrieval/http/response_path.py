"""Where the ids (and scores) are in an engine's JSON answer: a dotted path with list steps.

``hits.hits[*]._id`` reads ``answer["hits"]["hits"][i]["_id"]`` for every ``i``; ``[0]`` picks
one element; a path may start with ``[*]`` when the answer is a list. Keys are plain names
(letters, digits, ``_``, ``-``, ``@``, ``$``). A key that is absent, or a list step on a
non-list, is a :class:`ResponseShapeError` naming the path and showing the answer's start:
an answer without ids is never read as an empty ranking. Only a key marked optional with ``?``
(``root.children?[*].fields.id``: Vespa leaves ``children`` out when nothing matched) may be
absent, and then names no values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_SEGMENT = re.compile(r"^(?P<key>[A-Za-z0-9_\-@$]*)(?P<optional>\??)(?P<steps>(\[(\*|\d+)\])*)$")
_STEP = re.compile(r"\[(\*|\d+)\]")
SHOWN_CHARS = 200


class ResponsePathError(ValueError):
    """A path option that is not a valid response path (names the option and the bad part)."""


class ResponseShapeError(ValueError):
    """An engine answer that does not hold what the path names."""


def preview(payload: Any) -> str:
    """The first :data:`SHOWN_CHARS` characters of an answer, for error messages."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=str)
    return text[:SHOWN_CHARS]


@dataclass(frozen=True)
class ResponsePath:
    """A compiled path: a tuple of steps, each a key (str), an index (int) or every element (``None``)."""

    text: str
    steps: tuple[str | int | None, ...]
    optional: frozenset[int] = frozenset()  # positions in ``steps`` of keys that may be absent

    @classmethod
    def parse(cls, text: str, option: str = "backend_options.ids_path") -> ResponsePath:
        if not isinstance(text, str) or not text.strip():
            raise ResponsePathError(f"{option} must be a path such as 'hits.hits[*]._id', got {text!r}")
        steps: list[str | int | None] = []
        optional: set[int] = set()
        for segment in text.strip().split("."):
            match = _SEGMENT.match(segment)
            if match is None or (not match["key"] and not match["steps"]) or (match["optional"] and not match["key"]):
                raise ResponsePathError(f"{option}: {segment!r} in {text!r} is not a key, key[*] or key[N]; "
                                        "write e.g. 'hits.hits[*]._id'")
            if match["key"]:
                if match["optional"]:
                    optional.add(len(steps))
                steps.append(match["key"])
            steps += [None if step == "*" else int(step) for step in _STEP.findall(match["steps"])]
        return cls(text.strip(), tuple(steps), frozenset(optional))

    def extract(self, payload: Any) -> list[Any]:
        """Every value the path names in ``payload``, in order (a path without ``[*]``: one value)."""
        values = [payload]
        for depth, step in enumerate(self.steps):
            values = [v for value in values for v in self._step(value, step, depth, payload)]
        return values

    def _step(self, value: Any, step: str | int | None, depth: int, payload: Any) -> list[Any]:
        if isinstance(step, str):
            if isinstance(value, dict) and step in value:
                return [value[step]]
            if isinstance(value, dict) and depth in self.optional:
                return []
            problem = f"no key {step!r}" if isinstance(value, dict) else f"a {type(value).__name__} where an object should be"
        elif isinstance(value, list):
            if step is None:
                return value
            if -len(value) <= step < len(value):
                return [value[step]]
            problem = f"no element [{step}] (the list has {len(value)})"
        else:
            problem = f"a {type(value).__name__} where a list should be"
        where = self._where(depth)
        raise ResponseShapeError(f"the engine's answer has {problem} at {where!r} of the path {self.text!r}; "
                                 f"fix backend_options.ids_path/scores_path. The answer starts: {preview(payload)}")

    def _where(self, depth: int) -> str:
        text = ""
        for step in self.steps[:depth + 1]:
            text += f"[{'*' if step is None else step}]" if not isinstance(step, str) else (f".{step}" if text else step)
        return text


__all__ = ["ResponsePath", "ResponsePathError", "ResponseShapeError", "preview"]
