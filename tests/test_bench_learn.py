"""bench.learn's report arithmetic: per-query rows of verl_rec.evaluate, paired bootstrap intervals."""

from __future__ import annotations

import csv

from bench.learn import mean_interval, paired_bootstrap, read_per_query


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
