"""Per-query rows of ``verl_rec.evaluate``; the paired bootstrap over queries is the package's
(:mod:`verl_rec.devkit.bootstrap`, which the quickstart uses too)."""

from __future__ import annotations

import csv
from pathlib import Path

from verl_rec.devkit.bootstrap import mean_interval, paired_bootstrap

__all__ = ["mean_interval", "paired_bootstrap", "read_per_query"]


def read_per_query(path: Path) -> dict[str, dict[str, float]]:
    """``{system: {query record id: NDCG@10}}``; a sampled system's rows are averaged per query."""
    sums: dict[str, dict[str, list[float]]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            record = row["record_id"].split("#")[0]
            sums.setdefault(row["system"], {}).setdefault(record, []).append(float(row["ndcg@10"]))
    return {system: {q: sum(v) / len(v) for q, v in rows.items()} for system, rows in sums.items()}
