"""bench.learn's report: validation dumps in veRL's format -> per-split scores, intervals, gap closed, tables."""

from __future__ import annotations

import json

import pytest

from bench.learn.report import build_report, gap_closed
from bench.learn.runs import overrides, run_name
from bench.learn.scoring import Split, final_query, query_id, searched_queries
from bench.learn.settings import Settings
from bench.learn.tables import markdown
from verl_rec.tasks.records import TaskRecord

N = 12


def _split(name: str, source: str, tag: str, phrasing: str) -> Split:
    records = tuple(TaskRecord(f"q{i}-{tag}1", source, "search", {"d1": 1.0}, query=f"{phrasing} topic number {i}")
                    for i in range(N))
    return Split(name, records, raw={r.record_id: 0.2 for r in records}, terse={r.record_id: 0.6 for r in records})


def _answer(query: str) -> str:
    return f'{query}"}}</answer>'  # the rewrite's dump starts inside the pre-filled answer


def _write_dump(path, splits, ndcg_of, output_of, calls=0):
    rows = [{"input": f"system\n...\nuser\nRequest: \"{r.query}\"\nassistant\n", "output": output_of(r),
             "score": "0", "ndcg@10": str(ndcg_of(name, i)), "format_ok": "1.0", "search_calls": str(calls)}
            for name, split in splits.items() for i, r in enumerate(split.records)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def finished_run(tmp_path):
    """A rewrite run of 4 steps: untrained at the raw request's level, trained above it on every query."""
    splits = {"seen": _split("seen", "vaswani", "t", "I need papers on"), "unseen": _split("unseen", "vaswani_unseen", "u", "Dig up")}
    settings = Settings(steps=4, val_every=2, seeds=(0,), systems=("rewrite",), bootstrap=500)
    run_dir = tmp_path / "runs" / run_name("rewrite", 0)
    _write_dump(run_dir / "validation" / "0.jsonl", splits, lambda s, i: 0.2, lambda r: _answer(r.query))
    _write_dump(run_dir / "validation" / "2.jsonl", splits, lambda s, i: 0.3, lambda r: _answer("topic"))
    trained = {"seen": lambda i: 0.5, "unseen": lambda i: 0.4 if i % 3 else 0.1}
    _write_dump(run_dir / "validation" / "4.jsonl", splits, lambda s, i: trained[s](i), lambda r: _answer("topic number"))
    run = {"system": "rewrite", "seed": 0, "recipe": "quickstart_vaswani", "seconds": 100.0, "checkpoint": "ckpt",
           "metrics": {str(s): {"critic/score/mean": 0.1 * s, "timing_s/step": 20.0 + s, "timing_s/gen": 8.0}
                       for s in range(1, 5)}}
    return tmp_path, splits, settings, run


def test_the_report_scores_each_phrasing_against_the_raw_request_and_the_terse_query(finished_run):
    work, splits, settings, run = finished_run
    report = build_report(work, {"rewrite": {0: run}}, splits, settings, wall_seconds=123.0)
    seed0 = report["systems"]["rewrite"]["seeds"]["seed0"]
    assert report["raw_query_val_ndcg@10"] == pytest.approx({"seen": 0.2, "unseen": 0.2})
    assert report["collection_query_val_ndcg@10"] == pytest.approx({"seen": 0.6, "unseen": 0.6})
    seen, unseen = seed0["seen"], seed0["unseen"]
    assert seen["untrained_val_ndcg@10"] == pytest.approx(0.2) and seen["trained_val_ndcg@10"] == pytest.approx(0.5)
    assert seen["gap_closed"] == pytest.approx(0.75)  # (0.5 - 0.2) / (0.6 - 0.2)
    assert seen["trained_minus_raw"]["wins"] == N and seen["trained_minus_raw"]["ci95_low"] > 0
    # unseen: 8 of 12 queries at 0.4, 4 at 0.1: a mean gain of 0.1 whose interval the losses widen
    diff = unseen["trained_minus_raw"]
    assert (diff["wins"], diff["losses"]) == (8, 4) and diff["mean_difference"] == pytest.approx(0.1)
    assert diff["ci95_low"] < 0.1 < diff["ci95_high"]
    assert [p["step"] for p in seed0["curve"]] == [0, 1, 2, 3, 4]
    assert seed0["curve"][2]["val_unseen_ndcg@10"] == pytest.approx(0.3) and "val_seen_ndcg@10" not in seed0["curve"][1]
    assert seed0["stage_seconds_per_step"] == pytest.approx({"gen": 8.0, "step": 22.5})
    assert seed0["examples_unseen"][0]["untrained_query"] == splits["unseen"].records[0].query
    assert seed0["examples_unseen"][0]["trained_query"] == "topic number"
    text = markdown(report)
    assert "| rewrite, seed0 | seen | 0.200 | 0.500 | +0.300 [+0.300, +0.300] | 12 / 0 / 0 | 75% | 1.00 -> 1.00 | 0.00 | 100 |" in text
    assert "| raw request (BM25 on what the user wrote) | unseen | - | 0.200 |" in text


def test_a_run_without_its_final_validation_is_refused(finished_run):
    work, splits, settings, run = finished_run
    (work / "runs" / run_name("rewrite", 0) / "validation" / "4.jsonl").unlink()
    with pytest.raises(SystemExit, match="step 4"):
        build_report(work, {"rewrite": {0: run}}, splits, settings, wall_seconds=None)


def test_a_dump_missing_a_held_out_request_is_refused(finished_run):
    work, splits, settings, run = finished_run
    dump = work / "runs" / run_name("rewrite", 0) / "validation" / "4.jsonl"
    dump.write_text("".join(dump.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(ValueError, match="not validated"):
        build_report(work, {"rewrite": {0: run}}, splits, settings, wall_seconds=None)


def test_agent_episodes_give_their_searches_and_final_query():
    episode = ('<think>search</think>\n<tool_call>\n{"name": "search", "arguments": {"query": "dielectric \\"constant\\""}}\n'
               '</tool_call><|im_end|>\n<|im_start|>tool\n[search 1 of 2] results (id | title):\n1. 12 | A paper\n'
               '<|im_end|>\n<|im_start|>assistant\n<tool_call>{"name": "search", "arguments": {"query": "permittivity"}}'
               '</tool_call>...<think>\n</think>\n<answer>{"query": "dielectric permittivity"}</answer>')
    assert searched_queries(episode) == ['dielectric "constant"', "permittivity"]
    assert final_query(episode) == "dielectric permittivity"
    assert final_query("no answer here") is None
    assert final_query(_answer("a pre-filled one")) == "a pre-filled one"


def test_gap_closed_and_query_ids():
    assert gap_closed(0.3, 0.2, 0.4) == pytest.approx(0.5) and gap_closed(0.3, 0.2, 0.2) is None
    assert gap_closed(0.5, 0.2, 0.4) == pytest.approx(1.5)  # beyond the terse query
    record = TaskRecord("42-u3", "vaswani_unseen", "search", {"d": 1.0}, query="x")
    assert query_id(record) == "42"


def test_every_run_validates_on_both_phrasings_and_keeps_its_checkpoint(tmp_path):
    args = overrides("agent", 1, tmp_path / "model", tmp_path / "task", tmp_path / "run", Settings(steps=8, val_every=4))
    assert f"data.val_files=[{tmp_path / 'task' / 'test.parquet'},{tmp_path / 'task' / 'test_unseen.parquet'}]" in args
    assert {"data.seed=1", "actor_rollout_ref.rollout.seed=1", "trainer.save_freq=8", "trainer.test_freq=4"} <= set(args)


def test_the_command_line_refuses_a_schedule_that_skips_the_last_validation():
    from bench.learn.__main__ import main

    with pytest.raises(SystemExit):
        main(["--steps", "10", "--val-every", "4", "--report-only"])
    with pytest.raises(SystemExit):
        main(["--systems", "rewrite,planner", "--report-only"])


def test_the_report_lands_with_its_tables_plot_and_gzipped_evidence(finished_run, tmp_path):
    import gzip

    from bench.learn.report import write_report

    work, splits, settings, run = finished_run
    run_dir = work / "runs" / run_name("rewrite", 0)
    (run_dir / "run.json").write_text(json.dumps(run))
    (run_dir / "main_ppo.log").write_text("step:1 - critic/score/mean:0.1\n")
    report = build_report(work, {"rewrite": {0: run}}, splits, settings, wall_seconds=1.0)
    out = tmp_path / "out"
    write_report(report, out, work, {"rewrite": {0: run}})
    assert json.loads((out / "learning.json").read_text())["systems"]["rewrite"]["seeds"]["seed0"]["checkpoint"] == "ckpt"
    assert (out / "learning.md").read_text().startswith("| held-out NDCG@10 (12 queries) |")
    assert (out / "learning.png").stat().st_size > 10_000
    archived = out / "learning_runs" / "rewrite_seed0"
    assert sorted(p.name for p in archived.iterdir()) == ["main_ppo.log.gz", "run.json", "validation_step0.jsonl.gz",
                                                          "validation_step2.jsonl.gz", "validation_step4.jsonl.gz"]
    assert gzip.decompress((archived / "validation_step4.jsonl.gz").read_bytes()) == (run_dir / "validation" / "4.jsonl").read_bytes()


def test_a_search_agents_dumped_episode_gets_its_prefilled_call_back():
    from bench.learn.scoring import written
    from verl_rec.tasks.formats import SEARCH_CALL_PREFILL

    row = {"input": f"user\nRequest: x\nassistant\n{SEARCH_CALL_PREFILL}", "output": 'arc plasma"}}\ntool\n[search 1 of 1]'}
    assert searched_queries(written(row)) == ["arc plasma"]
    assert written({"input": "assistant\n", "output": "a"}) == "a"
