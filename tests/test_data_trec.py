"""The TREC-collection builder on the real Vaswani collection, its verbose requests, the
bm25_literature prompt, the own-query warm-up's helpers and sampled evaluation's rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import VASWANI_DIR
from verl_rec.builders.requests import (
    REQUEST_TEMPLATES,
    UNSEEN_REQUEST_TEMPLATES,
    read_templates,
    render_request,
    seeded_template,
    topic_text,
)
from verl_rec.builders.trec_collection import TrecOptions, build_trec_collection, split_queries
from verl_rec.devkit.own_query_warmup import answer_overlap, own_query
from verl_rec.errors import InputError
from verl_rec.evaluation.generate import Sampling
from verl_rec.evaluation.systems import sampled_records
from verl_rec.tasks.formats import get_format
from verl_rec.tasks.records import TaskRecord

DOCS, TOPICS, QRELS = VASWANI_DIR / "corpus" / "doc-text.trec", VASWANI_DIR / "query-text.trec", VASWANI_DIR / "qrels"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("vaswani_task")
    manifest = build_trec_collection(DOCS, TOPICS, QRELS, out)
    return out, manifest


def test_the_split_is_disjoint_seeded_and_covers_every_judged_query(built):
    out, manifest = built
    train_ids, heldout_ids = manifest.notes["train_query_ids"], manifest.notes["heldout_query_ids"]
    assert (len(train_ids), len(heldout_ids)) == (53, 40) and not set(train_ids) & set(heldout_ids)
    assert split_queries(train_ids + heldout_ids, 40, 0) == (train_ids, heldout_ids)
    assert split_queries(train_ids + heldout_ids, 40, 1) != (train_ids, heldout_ids)
    train, test = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "test.parquet")
    assert len(train) == 53 * len(REQUEST_TEMPLATES) and len(test) == 40
    assert {r.split("-t")[0] for r in train.record_id} == set(train_ids)
    assert {r.split("-t")[0] for r in test.record_id} == set(heldout_ids)
    assert set(train.split) == {"train"} and set(test.split) == {"test"}
    assert manifest.outputs["corpus.jsonl"] == 11429 and manifest.notes["request_templates"] == list(REQUEST_TEMPLATES)


def test_each_request_holds_the_collection_query_verbatim_and_its_qrels(built, vaswani):
    out, _ = built
    for row in pd.read_parquet(out / "test.parquet").itertuples():
        qid, template = row.record_id.split("-t")
        assert int(template) == seeded_template(qid, 0)
        assert row.query == render_request(vaswani.topics[qid], int(template))
        assert topic_text(vaswani.topics[qid]) in row.query
        assert json.loads(row.qrels) == {d: float(g) for d, g in vaswani.qrels[qid].items() if g > 0}


def test_held_out_queries_also_come_in_phrasings_training_never_shows(built, vaswani):
    out, manifest = built
    train = pd.read_parquet(out / "train.parquet")
    unseen = pd.read_parquet(out / "test_unseen.parquet")
    assert len(unseen) == 40 and set(unseen.data_source) == {"vaswani_unseen"}
    assert {r.split("-u")[0] for r in unseen.record_id} == set(manifest.notes["heldout_query_ids"])
    assert not set(UNSEEN_REQUEST_TEMPLATES) & set(REQUEST_TEMPLATES)
    # no training request carries an unseen template's wording around its topic
    frames = [t.split("{topic}") for t in UNSEEN_REQUEST_TEMPLATES]
    assert not any(all(part.lower() in q.lower() for part in parts if part.strip()) for q in train["query"]
                   for parts in frames)
    for row in unseen.itertuples():
        qid, template = row.record_id.split("-u")
        assert int(template) == seeded_template(qid, 0, UNSEEN_REQUEST_TEMPLATES)
        assert row.query == render_request(vaswani.topics[qid], int(template), UNSEEN_REQUEST_TEMPLATES)
    assert manifest.notes["unseen_request_templates"] == list(UNSEEN_REQUEST_TEMPLATES)
    assert manifest.outputs["test_unseen.parquet"] == 40
    assert len({seeded_template(q, 0, UNSEEN_REQUEST_TEMPLATES) for q in manifest.notes["heldout_query_ids"]}) > 4


def test_a_users_templates_file_phrases_the_unseen_requests(tmp_path, vaswani):
    from verl_rec.data_preprocess.trec import main

    templates = tmp_path / "mine.txt"
    templates.write_text("# my phrasings\nwhat is known about {topic}?\n\nsources on {topic}, please\n")
    out = tmp_path / "task"
    assert main(["--docs", str(DOCS), "--topics", str(TOPICS), "--qrels", str(QRELS), "--out", str(out),
                 "--heldout", "10", "--templates", str(templates)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notes"]["unseen_request_templates"] == ["what is known about {topic}?", "sources on {topic}, please"]
    assert manifest["settings"]["templates_file"] == str(templates)
    unseen = pd.read_parquet(out / "test_unseen.parquet")
    assert len(unseen) == 10 and all(q.startswith(("what is known about", "sources on")) for q in unseen["query"])


@pytest.mark.parametrize("body, message", [
    ("about {subject}\n", r"mine.txt:1: a template needs \{topic\} exactly once"),
    ("ok {topic}\n{topic} and {topic}\n", r"mine.txt:2: a template needs"),
    ("no field at all\n", r"mine.txt:1"),
    ("broken {topic\n", r"mine.txt:1: .*literal braces"),
    ("# only a comment\n", "no template in the file"),
])
def test_a_bad_templates_file_fails_naming_the_line(tmp_path, body, message):
    (tmp_path / "mine.txt").write_text(body)
    with pytest.raises(InputError, match=message):
        read_templates(tmp_path / "mine.txt")


def test_unseen_templates_may_not_repeat_a_training_one():
    with pytest.raises(InputError, match="training templates"):
        TrecOptions(unseen_templates=(REQUEST_TEMPLATES[0],))


def test_terse_requests_keep_the_query_text(tmp_path, vaswani):
    build_trec_collection(DOCS, TOPICS, QRELS, tmp_path, TrecOptions(requests="terse", heldout=10))
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert len(test) == 10 and all(row.query == vaswani.topics[row.record_id] for row in test.itertuples())
    assert not (tmp_path / "test_unseen.parquet").exists()  # the collection's own query has no phrasing


def test_bad_inputs_fail_naming_the_option(tmp_path):
    with pytest.raises(InputError, match="--heldout 93"):
        build_trec_collection(DOCS, TOPICS, QRELS, tmp_path, TrecOptions(heldout=93))
    with pytest.raises(InputError, match="--qrels .*no such file"):
        build_trec_collection(DOCS, TOPICS, tmp_path / "missing", tmp_path)
    with pytest.raises(InputError, match="--requests"):
        TrecOptions(requests="chatty")


def test_the_literature_prompt_carries_the_request():
    record = TaskRecord("1-t3", "vaswani", "search", {"d": 1.0}, query=render_request("MICROWAVE TECHNIQUES", 3))
    system, user = get_format("bm25_literature").messages(record)
    assert "scientific papers" in system["content"] and "looking for published work on microwave techniques" in user["content"].lower()
    assert "<answer>" in user["content"]


def test_own_queries_are_read_from_the_first_line_and_measured_against_the_request():
    assert own_query('\n "dielectric constant microwave"\nMore text') == "dielectric constant microwave"
    assert own_query("   \n") == ""
    overlap = answer_overlap(["Find papers on red shoes.", "Papers on cats?"], ["papers on red shoes", "dogs"])
    assert overlap["exact_copy_share"] == 0.0 and overlap["word_subset_share"] == 0.5


def test_sampled_rows_repeat_each_record_and_sampling_is_checked():
    record = TaskRecord("q1", "s", "search", {"d": 1.0}, query="x")
    assert [r.record_id for r in sampled_records([record], 3)] == ["q1#0", "q1#1", "q1#2"]
    with pytest.raises(ValueError):
        Sampling(n=0)
    with pytest.raises(ValueError):
        Sampling(temperature=0.0)


def test_data_preprocess_runs_from_a_checkout_like_recipes():
    """``python -m data_preprocess.<name>`` from the repository root, next to ``recipes/``."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for name in ("esci", "trec"):
        out = subprocess.run([sys.executable, "-m", f"data_preprocess.{name}", "--help"], cwd=root,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "--out" in out.stdout, out.stderr[-2000:]
