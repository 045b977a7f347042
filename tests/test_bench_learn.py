"""bench.learn's report arithmetic: per-query rows of verl_rec.evaluate, paired bootstrap intervals."""

from __future__ import annotations

import csv

from bench.learn.statistics import mean_interval, paired_bootstrap, read_per_query


def test_sampled_rows_are_averaged_per_query(tmp_path):
    path = tmp_path / "per_query.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["system", "record_id", "ndcg@10"])
        writer.writeheader()
        writer.writerows([{"system": "raw", "record_id": "q1", "ndcg@10": 0.5},
                          {"system": "m@sampled", "record_id": "q1#0", "ndcg@10": 0.2},
                          {"system": "m@sampled", "record_id": "q1#1", "ndcg@10": 0.6}])
    rows = read_per_query(path)
    assert rows["raw"] == {"q1": 0.5} and abs(rows["m@sampled"]["q1"] - 0.4) < 1e-12


def test_paired_bootstrap_counts_and_brackets_the_mean_difference():
    a = {f"q{i}": 0.5 + (0.1 if i % 4 else -0.05) for i in range(40)}
    b = {f"q{i}": 0.5 for i in range(40)}
    result = paired_bootstrap(a, b, resamples=2000, seed=0)
    assert (result["wins"], result["losses"], result["ties"]) == (30, 10, 0)
    assert abs(result["mean_difference"] - (30 * 0.1 - 10 * 0.05) / 40) < 1e-9
    assert 0 < result["ci95_low"] < result["mean_difference"] < result["ci95_high"]
    same = paired_bootstrap(b, b, resamples=200, seed=0)
    assert same["ci95_low"] == same["ci95_high"] == 0.0 and same["ties"] == 40
    interval = mean_interval(a, resamples=2000, seed=0)
    assert interval["ci95_low"] < interval["mean"] < interval["ci95_high"]


def test_markdown_lists_every_system_every_interval_and_the_examples():
    from bench.learn.report import markdown
    from bench.learn.settings import SYSTEMS

    stats = {"mean": 0.3, "ci95_low": 0.2, "ci95_high": 0.4}
    diff = {"mean_difference": 0.05, "ci95_low": 0.01, "ci95_high": 0.09, "wins": 20, "losses": 10, "ties": 10}
    report = {"trained_at_step": 60, "val_queries": 40, "settings": {"eval_samples": 4},
              "evaluate_cli": {"table": {s: {"greedy": stats, **({"sampled": stats} if s != "raw" else {})}
                                         for s in SYSTEMS}},
              "interval": {"method": "paired bootstrap", "trained_minus_raw": diff},
              "examples": [{"request": "papers on x", "raw_ndcg@10": 0.1, "warmed_up_query": None,
                            "warmed_up_ndcg@10": 0.0, "trained_query": "x | y", "trained_ndcg@10": 0.5}]}
    text = markdown(report)
    assert text.startswith("| held-out NDCG@10 (40 queries), mean [95% bootstrap] | greedy | sampled (4 per query) |")
    assert "after 60 GRPO steps | 0.300 [0.200, 0.400] | 0.300 [0.200, 0.400] |" in text
    assert "| raw request (BM25 on what the user wrote) | 0.300 [0.200, 0.400] | - |" in text
    assert "| trained - raw | +0.050 [+0.010, +0.090] | 20 / 10 / 10 |" in text
    assert "| papers on x | (malformed) (0.00) | x / y (0.50) | 0.10 |" in text  # a "|" would split the cell
