"""``python -m bench.run`` end to end on a 10k catalog: Ray reward workers, the real service
actors, the paper loop and the raw engines, table, targets, JSON and chart (no timing assertions).

The check that matters: every reward of our path equals the paper loop's reward for the same
sample (Lucene and bm25s), i.e. the fast paths change the speed, not the training signal.
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


def test_bench_command_on_a_small_catalog(tmp_path):
    from bench import run as bench

    out = tmp_path / "results"
    bench.main(["--sizes", "10000", "--steps", "2", "--long-steps", "1", "--warmup-steps", "1", "--workers", "2",
                "--worker-impl", "inline", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    results = json.loads((out / "reward_throughput.json").read_text())
    assert (out / "reward_throughput.png").stat().st_size > 5_000
    cells = {c["length"]: c for c in results["cells"]}
    assert set(cells) == {"short", "long"}
    for length, cell in cells.items():
        assert {"paper", "ours/lucene", "ours/bm25s", "raw/lucene", "raw/bm25s", "raw/lucene+positions",
                "raw/bm25s+positions"} <= set(cell["paths"]), length
        for backend in ("lucene", "bm25s"):
            ours = cell["paths"][f"ours/{backend}"]
            assert ours["retrieval_errors"] == 0 and ours["service"]["failed_batches"] == 0
            # the plumbing reference ran on the service's own engine every step, next to our path
            assert len(ours["raw_service_step_seconds"]) == len(ours["step_seconds"]) and ours["raw_service_seconds"] > 0
            assert cell["paths"][f"raw/{backend}+positions"]["seconds"] == ours["raw_service_seconds"]
            assert ours["service"]["engine_queries"] < ours["service"]["requests"]  # repeats answered once
            assert cell["agreement"][f"ours/{backend}"] == {"max_abs_diff": 0.0, "share_equal": 1.0}, (length, backend)
        assert cell["overlap"]["mean"] >= 0.99
    short = cells["short"]
    assert set(short["memory"]) == {"lucene", "bm25s"}  # 1 vs 2 workers, on the largest (only) catalog
    verdicts = {c["target"]: c["met"] for c in results["targets"]}
    assert verdicts["overlap@k bm25s vs lucene (headline cell)"] is True
    assert all(c["value"] is not None for c in results["targets"])
