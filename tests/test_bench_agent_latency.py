"""``python -m bench.agent_latency`` on a small catalog, as a CORRECTNESS test (no timing asserted).

The tool calls and the reward samples go through a real service actor, from several worker
actors at once: every call is answered with titled hits, every sample with a contract score,
the service batches and deduplicates them, and the report holds every latency it summarises.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

pytestmark = pytest.mark.slow


def test_agent_latency_command_on_a_small_catalog(tmp_path, monkeypatch):
    import bench.catalog
    from bench import agent_latency

    monkeypatch.setattr(bench.catalog, "CACHE_ROOT", tmp_path / "cache")  # a fresh catalog, not the shared cache
    out = tmp_path / "results"
    results = agent_latency.main(["--products", "3000", "--backend", "bm25s", "--threads", "1", "--episodes", "48",
                                  "--agent-workers", "2", "--reward-workers", "1", "--steps", "2", "--warmup-steps", "1",
                                  "--alone-calls", "5", "--top-k", "5", "--out", str(out)])
    saved = json.loads((out / "agent_latency.json").read_text())
    assert saved["tool"] == results["tool"]
    table = (out / "agent_latency.txt").read_text()
    for row in ("| tool call (search, top 5 + titles) | 96 |", "| tool call, one at a time | 5 |",
                "| single-turn reward (positions @1000) | 96 |"):
        assert row in table, table
    assert results["tool"]["n"] == results["reward"]["n"] == 2 * 48 and results["tool_alone"]["n"] == 5
    assert len(saved["latencies_ms"]["tool"]) == 96
    for key in ("tool", "tool_alone", "reward"):
        p = results[key]
        assert 0 < p["p50_ms"] <= p["p95_ms"] <= p["max_ms"]
    assert results["hits_per_call"]["min"] >= 1  # every search showed results (short title-word queries)
    assert results["reward_scores"]["n"] == 96
    service = results["service"]
    assert service["requests"] == 2 * 96 and service["batches"] < service["requests"]  # micro-batched
    assert service["deduplicated"] > 0  # a GRPO group repeats queries: each runs once per batch
