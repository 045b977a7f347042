"""RecTaskDataset (``data.custom_cls``): prompts rendered at load time from task records."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from verl_rec.data.esci import write_records
from verl_rec.reward.parsing import parse_output
from verl_rec.tasks.formats import FORMATS, get_format
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
