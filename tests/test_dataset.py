"""RecTaskDataset (``data.custom_cls``): prompts rendered at load time from task records."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from verl_rec.reward.parsing import parse_output
from verl_rec.tasks.formats import FORMATS, get_format
from verl_rec.tasks.record_files import write_records
from verl_rec.tasks.records import Candidate, TaskRecord

RECORDS = [
    TaskRecord("r1", "esci/Video_Games", "search", {"B1": 1.0, "B2": 3.0}, query="wireless controller"),
    TaskRecord("r2", "seqrec_All_Beauty/train", "seqrec", {"A9": 1.0}, history=("Rose Serum", "Clay Mask")),
    TaskRecord("r3", "rerank_esci", "rerank", {"Item_2": 1.0},
               query="red pen", candidates=(Candidate("Item_1", "blue pen"), Candidate("Item_2", "red pen"))),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from verl_rec.devkit.tiny_model import build_tiny_model

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def load(path, tokenizer, **data):
    from verl_rec.integration.dataset import RecTaskDataset

    config = OmegaConf.create({"max_prompt_length": 4096, "filter_overlong_prompts": False, **data})
    return RecTaskDataset(data_files=[str(path)], tokenizer=tokenizer, config=config)


@pytest.mark.parametrize("fmt", ["bm25_query", "dense_expansion"])
def test_prompt_format_is_chosen_at_load_time(tmp_path, tokenizer, fmt):
    path = tmp_path / "records.parquet"
    write_records(RECORDS[:1], path)
    item = load(path, tokenizer, prompt_format=fmt)[0]
    assert item["raw_prompt"] == get_format(fmt).messages(RECORDS[0])
    assert "wireless controller" in item["raw_prompt"][1]["content"]
    assert item["extra_info"]["prompt_format"] == fmt and item["extra_info"]["record_id"] == "r1"
    assert json.loads(item["reward_model"]["ground_truth"]) == {"B1": 1.0, "B2": 3.0}  # qrels intact
    assert item["data_source"] == "esci/Video_Games"


def test_an_edited_prompt_is_rendered_in_its_new_words(tmp_path, tokenizer, monkeypatch):
    """datasets' map cache keys on the function and its arguments, not on the format's wording:
    a second load of the same file after the wording changed must not bring back the old prompt."""
    from dataclasses import replace

    path = tmp_path / "records.parquet"
    write_records(RECORDS[:1], path)
    assert load(path, tokenizer, prompt_format="bm25_query")[0]["raw_prompt"][0]["content"] == FORMATS["bm25_query"].system
    monkeypatch.setitem(FORMATS, "bm25_query", replace(FORMATS["bm25_query"], system="an edited system prompt"))
    assert load(path, tokenizer, prompt_format="bm25_query")[0]["raw_prompt"][0]["content"] == "an edited system prompt"


def test_every_task_renders_and_asks_for_the_key_the_reward_checks(tmp_path, tokenizer):
    path = tmp_path / "records.parquet"
    write_records(RECORDS, path)
    for fmt, index in (("bm25_query", 0), ("seqrec_query", 1), ("rerank", 2)):
        item = load(path, tokenizer, prompt_format=fmt)[index]
        content = item["raw_prompt"][1]["content"]
        key = get_format(fmt).answer_key
        assert f'"{key}"' in content  # the prompt's example answer uses the checked key
        example = content.split("for example: ", 1)[1].split(". Write nothing", 1)[0]
        assert parse_output("<think>x</think>" + example.replace("...", "a"), get_format(fmt).spec).ok
    assert "Rose Serum" in load(path, tokenizer, prompt_format="seqrec_query")[1]["raw_prompt"][1]["content"]
    assert "[Item_2] red pen" in load(path, tokenizer, prompt_format="rerank")[2]["raw_prompt"][1]["content"]


def test_bm25_prompt_tells_the_truth_about_the_engine():
    system = FORMATS["bm25_query"].system
    assert "bag-of-words" in system and "no effect" in system


def test_bad_files_fail_early_naming_file_and_column(tmp_path, tokenizer):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"record_id": ["x"], "task": ["search"]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"bad\.parquet.*'data_source'"):
        load(path, tokenizer)
    good = tmp_path / "good.parquet"
    write_records(RECORDS[:1], good)
    with pytest.raises(KeyError, match="unknown prompt format 'bm25'"):
        load(good, tokenizer, prompt_format="bm25")


def test_rerank_rows_carry_their_candidate_ids(tmp_path, tokenizer):
    path = tmp_path / "records.parquet"
    write_records(RECORDS, path)
    item = load(path, tokenizer, prompt_format="rerank")[2]
    assert item["extra_info"]["candidate_ids"] == ["Item_1", "Item_2"]  # the reward checks the permutation
    assert "agent_name" not in item  # no pre-fill: veRL's default agent loop


def test_paper_format_rows_select_the_prefill_agent_loop(tmp_path, tokenizer):
    from verl_rec.tasks.formats import PREFILL_AGENT_LOOP

    path = tmp_path / "records.parquet"
    write_records(RECORDS[:1], path)
    item = load(path, tokenizer, prompt_format="paper_sparse")[0]
    assert item["agent_name"] == PREFILL_AGENT_LOOP == "verl_rec_prefill"
    assert item["extra_info"]["prompt_format"] == "paper_sparse" and "candidate_ids" not in item["extra_info"]
    assert "agent_name" not in load(path, tokenizer, prompt_format="bm25_query")[0]


def test_overlong_prompt_filter_leaves_room_for_the_prefill(tmp_path, tokenizer):
    path = tmp_path / "records.parquet"
    write_records(RECORDS[:1], path)
    fmt = get_format("paper_sparse")
    without = len(tokenizer.apply_chat_template(fmt.messages(RECORDS[0]), add_generation_prompt=True, tokenize=True,
                                                return_dict=False))
    room = len(tokenizer.encode(fmt.assistant_prefill, add_special_tokens=False))
    fits = load(path, tokenizer, prompt_format="paper_sparse", filter_overlong_prompts=True, max_prompt_length=without + room)
    assert len(fits) == 1 and fits.max_prompt_length == without + room
    too_long = load(path, tokenizer, prompt_format="paper_sparse", filter_overlong_prompts=True,
                    max_prompt_length=without + room - 1)
    assert len(too_long) == 0  # the chat template alone fits, the pre-filled prompt does not


def test_list_columns_written_as_json_strings_are_read(tmp_path, tokenizer):
    """A records file whose candidates/history columns hold JSON strings loads; a malformed one fails
    naming the file, the row and the column."""
    rows = [RECORDS[1].to_row(), RECORDS[2].to_row()]
    for row in rows:
        row["history"], row["candidates"] = json.dumps(row["history"]), json.dumps(row["candidates"])
    path = tmp_path / "json_lists.parquet"
    pd.DataFrame(rows).to_parquet(path)
    assert "Rose Serum" in load(path, tokenizer, prompt_format="seqrec_query")[0]["raw_prompt"][1]["content"]
    assert load(path, tokenizer, prompt_format="rerank")[1]["extra_info"]["candidate_ids"] == ["Item_1", "Item_2"]
    rows[1]["candidates"] = '[{"id": "Item_1"'
    bad = tmp_path / "bad_json.parquet"
    pd.DataFrame(rows).to_parquet(bad)
    with pytest.raises(ValueError, match=r"bad_json\.parquet row 1: column 'candidates' is a string that is not a JSON list"):
        load(bad, tokenizer, prompt_format="rerank")
