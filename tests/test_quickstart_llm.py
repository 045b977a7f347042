"""The real-LLM quickstart's parts: the bundled collection, its pre-filled format, the held-out
comparison and the final line. The whole run (SmolLM2, ~10 min on 2 cores) is ``python -m
bench.quickstart``; ``quickstart_vaswani`` is composed and validated with every recipe
(tests/test_recipes.py)."""

from __future__ import annotations

import json
import sys

import pytest

from verl_rec import quickstart, quickstart_llm
from verl_rec.bundled import VASWANI_FILES, unpack_vaswani
from verl_rec.devkit.heldout import dumped_ndcg, match_record
from verl_rec.reward.parsing import parse_output
from verl_rec.tasks.formats import SHORT_ANSWER_PREFILL, format_spec, get_format
from verl_rec.tasks.records import TaskRecord


def record(rid: str, query: str) -> TaskRecord:
    return TaskRecord(rid, "vaswani", "search", {"1": 1.0}, query=query, split="test")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from verl_rec.builders.trec_collection import build_trec_collection

    root = tmp_path_factory.mktemp("vaswani")
    files = unpack_vaswani(root / "source")
    build_trec_collection(files["docs"], files["topics"], files["qrels"], root / "task")
    return root


def test_bundled_collection_unpacks_to_the_vaswani_task(task):
    from verl_rec.tasks.record_files import read_records

    assert sorted(p.name for p in (task / "source").iterdir()) == sorted(VASWANI_FILES)
    manifest = json.loads((task / "task" / "manifest.json").read_text())
    assert manifest["inputs"]["documents"] == 11429 and manifest["inputs"]["topics"] == 93
    held_out, train = read_records(task / "task" / "test.parquet"), read_records(task / "task" / "train.parquet")
    assert len(held_out) == 40 and {r.record_id.split("-t")[0] for r in held_out}.isdisjoint(
        {r.record_id.split("-t")[0] for r in train})
    assert unpack_vaswani(task / "source")["docs"].stat().st_size == 3494318  # a second call keeps the files


def test_short_format_prefills_the_answer_and_the_reward_reads_the_rest():
    fmt = get_format("bm25_literature_short")
    assert fmt.assistant_prefill == SHORT_ANSWER_PREFILL and fmt.assistant_prefill.endswith('{"query": "')
    spec = format_spec("bm25_literature_short")
    assert spec.think_prefilled and spec.prefill_after_think == '\n</think>\n<answer>{"query": "'
    assert parse_output('radio waves"}</answer><|im_end|>', spec).answer == "radio waves"
    assert not parse_output("radio waves and a lot more words", spec).ok  # never closed: a format failure
    assert not parse_output('radio waves"}</answer>', format_spec("bm25_literature_short", think_prefilled=False)).ok
    user = fmt.messages(record("r", "I need papers on radio waves."))[1]["content"]
    assert user.startswith('Request: "I need papers on radio waves."') and "<answer>" not in user


def test_validation_rows_match_records_by_their_request(tmp_path):
    records = [record("1-t0", "papers on radio waves"), record("2-t1", "radio waves"), record("3-t2", "lasers")]
    assert match_record('Request: "papers on radio waves"', records).record_id == "1-t0"  # the longest match
    dump = tmp_path / "0.jsonl"
    rows = [{"input": f'Request: "{r.query}"', "ndcg@10": i / 10} for i, r in enumerate(records)]
    dump.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert dumped_ndcg(dump, records) == {"1-t0": 0.0, "2-t1": 0.1, "3-t2": 0.2}
    dump.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n")
    with pytest.raises(ValueError, match="1 held-out records not validated"):
        dumped_ndcg(dump, records)
    dump.write_text("\n".join(json.dumps(r) for r in [*rows, rows[0]]) + "\n")
    with pytest.raises(ValueError, match="validated twice"):
        dumped_ndcg(dump, records)
    with pytest.raises(ValueError, match="no held-out request"):
        match_record("something else", records)


def test_final_line_holds_the_three_systems_the_gain_and_the_time():
    raw = {"a": 0.2, "b": 0.4}
    line = quickstart_llm.final_line(raw, {"a": 0.1, "b": 0.1}, {"a": 0.3, "b": 0.5}, 512.4)
    assert line.startswith("held-out NDCG@10 (2 requests): raw request 0.300 | untrained 0.100 | trained 0.400 ")
    assert "trained - raw +0.100, 95% CI [+0.100, +0.100]" in line and line.endswith("| 512 s")


def test_step_lines_show_reward_ndcg_seconds_and_held_out_ndcg():
    val = {"val-aux/vaswani/ndcg@10/mean@1": 0.158}
    assert quickstart_llm.step_line(0, val, 14) == "step  0/14 | held-out NDCG@10 0.158 (untrained)"
    train = {"critic/score/mean": -0.5, "train-aux/ndcg@10/mean": 0.061, "train-aux/format_ok/mean": 0.75,
             "timing_s/step": 41.2}
    assert quickstart_llm.step_line(3, train, 14) == "step  3/14 | reward -0.500 | NDCG@10 0.061 | format ok 0.75 | 41 s"
    assert quickstart_llm.step_line(14, {**train, **val}, 14).endswith("| 41 s | held-out NDCG@10 0.158")
    assert quickstart_llm.step_line(5, {"timing_s/testing": 3.0}, 14) is None


def test_command_runs_the_packaged_recipe_on_the_cpu(tmp_path):
    cmd = quickstart_llm.command(False, tmp_path / "m", tmp_path, ["x=1"], steps=3)
    assert cmd[:3] == [sys.executable, "-m", "verl.trainer.main_ppo"] and "--config-name=quickstart_vaswani" in cmd
    assert "actor_rollout_ref.rollout.name=hf" in cmd and cmd[-1] == "x=1"
    assert {"trainer.total_training_steps=3", "trainer.test_freq=3", f"actor_rollout_ref.model.path={tmp_path / 'm'}",
            f"trainer.validation_data_dir={tmp_path / 'validation'}"} <= set(cmd)
    assert "actor_rollout_ref.rollout.name=hf" not in quickstart_llm.command(True, tmp_path, tmp_path, [], None)


def test_curve_is_written_next_to_the_log(tmp_path):
    from verl_rec.devkit.curve import plot_curve

    train = {s: {"reward": -1 + s / 10, "ndcg": s / 50} for s in range(1, 6)}
    png = plot_curve(train, {0: 0.15, 5: 0.3}, 0.26, tmp_path / "quickstart.png", "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_step_count_fails_before_anything_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VERL_REC_DATA", str(tmp_path))
    with pytest.raises(SystemExit):
        quickstart.main(["--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err and not any(tmp_path.iterdir())
