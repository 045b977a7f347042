"""Streaming an item pool into ``corpus.jsonl``: the first copy of each id, never an empty text.

The item-pool builders (Amazon-C4, Amazon Reviews 2023) read millions of rows and must count
what they leave out; this is their one loop, so the counting rule cannot drift between them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Item = Mapping[str, Any]


@dataclass(frozen=True)
class ItemCounts:
    """What the loop read and left out."""

    rows: int
    duplicates: int
    empty: int


def write_unique_items(items: Iterable[Item], out: Path, id_key: str, text_of: Callable[[Item], str],
                      on_unique: Callable[[str, Item], None] | None = None) -> tuple[set[str], ItemCounts]:
    """Write ``{"id", "contents"}`` lines to ``out``; return the ids written and the counts.

    Args:
        items: the pool's rows (dicts); ``id_key`` holds the id, stripped of white space.
        text_of: the document text of an item; an empty text leaves the item out (counted).
        on_unique: called with every first copy of an id, written or not (e.g. to keep titles).
    """
    ids: set[str] = set()
    seen: set[str] = set()
    rows = duplicates = empty = 0
    with out.open("w", encoding="utf-8") as handle:
        for item in items:
            rows += 1
            item_id = str(item[id_key]).strip()
            if item_id in seen:
                duplicates += 1
                continue
            seen.add(item_id)
            if on_unique is not None:
                on_unique(item_id, item)
            text = text_of(item)
            if not text:
                empty += 1
                continue
            handle.write(json.dumps({"id": item_id, "contents": text}, ensure_ascii=False) + "\n")
            ids.add(item_id)
    return ids, ItemCounts(rows, duplicates, empty)
