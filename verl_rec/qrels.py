"""Qrels, the relevance judgments ``{doc_id: gain}``: the one place they are read, in every stored form.

Two entry points, so that each caller rejects what it should:

* :func:`as_qrels` takes the in-memory forms the metrics accept: a mapping ``{id: gain}`` or
  an iterable of ids (binary gain 1). A bare string is a ``TypeError`` (it would otherwise
  read as a list of one-letter ids).
* :func:`parse_qrels` takes every form a dataset stores: those two, a JSON string of either
  (the task records' ``qrels`` column, veRL's ``ground_truth``), or ``{"targets": [...],
  "gains": [...]}`` parallel lists (Arrow-friendly). A malformed value is a data bug: it
  raises ``ValueError`` naming ``what`` was read and showing the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

Qrels = Mapping[str, float] | Iterable[str]


def as_qrels(targets: Qrels) -> dict[str, float]:
    """Normalise targets to ``{id: gain}``; a plain id list means binary gain 1."""
    if isinstance(targets, Mapping):
        return {str(doc): float(gain) for doc, gain in targets.items()}
    if isinstance(targets, (str, bytes)):
        raise TypeError("targets must be a mapping or a list of ids, not a single string")
    return {str(doc): 1.0 for doc in targets}


def _malformed(what: str, stored: Any) -> ValueError:
    return ValueError(f"{what} must be {{id: gain}} or a list of ids, got {str(stored)[:200]!r}")


def _from_parallel_lists(value: Mapping[str, Any], what: str, stored: Any) -> dict[Any, Any]:
    """``{"targets": [...], "gains": [...]}`` (gains optional: binary) as one mapping."""
    try:
        targets = list(value["targets"])
        gains = [1.0] * len(targets) if value.get("gains") is None else list(value["gains"])
    except TypeError:
        raise _malformed(what, stored) from None
    if len(gains) != len(targets):
        raise ValueError(f"{what} has {len(targets)} targets but {len(gains)} gains")
    return dict(zip(targets, gains))


def parse_qrels(value: Any, what: str = "ground_truth") -> dict[str, float]:
    """``{id: gain}`` from any stored form (see the module docstring); ``None`` is no targets."""
    stored = value
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{what} is a string but not JSON: {str(stored)[:200]!r}") from None
    if isinstance(value, Mapping) and "targets" in value:
        value = _from_parallel_lists(value, what, stored)
    try:
        return as_qrels(value) if value is not None else {}
    except (TypeError, ValueError):
        raise _malformed(what, stored) from None
