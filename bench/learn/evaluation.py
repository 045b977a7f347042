"""The held-out evaluation: the ``verl_rec.evaluate`` command line and the collection's terse-query reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.learn.settings import EVAL_METRICS, PROMPT_FORMAT, Settings


def evaluate_command(task: Path, models: dict[str, Path], out: Path, settings: Settings) -> list[str]:
    """The ``verl_rec.evaluate`` command line of the held-out table (printed in the docs)."""
    return [sys.executable, "-m", "verl_rec.evaluate", "--records", str(task / "test.parquet"),
            "--backend", "lucene", "--index", str(task / "index_lucene"),
            "--backend-options", '{"heap": "512m", "threads": 1}', "--raw",
            *[arg for name, path in models.items() for arg in ("--model", f"{name}={path}")],
            "--prompt-format", PROMPT_FORMAT, "--metrics", EVAL_METRICS,
            "--max-new-tokens", str(settings.response_length), "--engine", "transformers",
            "--samples", str(settings.eval_samples), "--temperature", str(settings.temperature),
            "--top-p", "0.95", "--seed", str(settings.seed), "--out", str(out)]


def collection_query_ndcg(task: Path) -> float:
    """NDCG@10 of the held-out queries' original (terse) text: a reference, not a system here."""
    from verl_rec.builders.requests import topic_text
    from verl_rec.metrics import ndcg_at_k_batch
    from verl_rec.retrieval.registry import open_retriever
    from verl_rec.retrieval.trec import read_trec_topics
    from verl_rec.tasks.record_files import read_records

    settings = json.loads((task / "manifest.json").read_text())["settings"]
    topics = read_trec_topics(settings["topics"])
    records = read_records(task / "test.parquet")
    retriever = open_retriever("lucene", str(task / "index_lucene"), heap="512m", threads=1)
    try:
        hits = retriever.search([topic_text(topics[r.record_id.split("-t")[0]]) for r in records], 10)
    finally:
        retriever.close()
    return float(ndcg_at_k_batch([h.ids for h in hits], [r.qrels for r in records], 10).mean())
