"""The reward manager on single samples, without Ray: how it reads what the rollout did.

The prompt tokens decide whether an output continues a pre-filled ``<think>`` (the paper
formats' pre-fill, rendered by the prefill agent loop); ``extra_info["candidate_ids"]`` decides
which lists are permutations. The same outputs go through veRL's reward loop on Ray in
test_reward_loop.py and through the stock trainer in test_trainer_rec.py.
"""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest
from omegaconf import OmegaConf

from verl_rec.tasks.formats import get_format
from verl_rec.tasks.records import Candidate, TaskRecord

RECORD = TaskRecord("r", "rerank_esci", "rerank", {"Item_2": 1.0}, query="red pen",
                    candidates=(Candidate("Item_1", "blue pen"), Candidate("Item_2", "red pen"), Candidate("Item_3", "ink")))
ITEMS = [c.id for c in RECORD.candidates]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from verl_rec.devkit.tiny_model import build_tiny_model

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def manager(tokenizer):
    from verl_rec.integration.reward_manager import RecR1RewardManager

    config = OmegaConf.create({"reward": {"reward_kwargs": {"metric": "ndcg@16", "eval_metrics": ["ndcg@10"]}}})
    return RecR1RewardManager(config, tokenizer)


def sample(tokenizer, prompt_text: str, response: str, extra_info: dict, ground_truth, prompt_len: int = 512):
    """One sample shaped like the trainer's: a left-padded prompt, a right-padded response."""
    import torch
    from verl import DataProto

    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"][-prompt_len:]
    answer = tokenizer(response, add_special_tokens=False)["input_ids"]
    pad = tokenizer.pad_token_id or 0
    prompts = torch.full((1, prompt_len), pad, dtype=torch.long)
    prompts[0, prompt_len - len(prompt):] = torch.tensor(prompt)
    responses = torch.full((1, len(answer) + 4), pad, dtype=torch.long)
    responses[0, :len(answer)] = torch.tensor(answer)
    attention = torch.zeros((1, prompt_len + responses.shape[1]), dtype=torch.long)
    attention[0, prompt_len - len(prompt):prompt_len + len(answer)] = 1
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": attention,
                 "input_ids": torch.cat([prompts, responses], 1)},
        non_tensors={"reward_model": np.array([{"style": "rule", "ground_truth": ground_truth}], dtype=object),
                     "extra_info": np.array([extra_info], dtype=object)},
    )


def score(manager, data) -> dict:
    return asyncio.run(manager.run_single(data))


@pytest.mark.parametrize("items, expected", [(["Item_2"], -2.0), (["Item_2", "Item_2", "Item_99"], -2.0),
                                             (["Item_2", "Item_3", "Item_1"], 1.1)])
def test_manager_checks_reranked_lists_against_the_prompts_candidates(manager, tokenizer, items, expected):
    prompt = get_format("rerank").render(tokenizer, RECORD)
    response = f'<think>t</think><answer>{json.dumps({"reranked_items": items})}</answer><|im_end|>'
    extra_info = {"prompt_format": "rerank", "candidate_ids": ITEMS}
    out = score(manager, sample(tokenizer, prompt, response, extra_info, json.dumps(RECORD.qrels)))
    assert out["reward_score"] == pytest.approx(expected)
    assert out["reward_extra_info"]["format_ok"] == float(expected != -2.0)


def test_manager_reads_an_output_after_the_prefill_as_its_continuation(manager, tokenizer, caplog):
    """The paper prompt ends with the pre-fill: the output continues inside <think>. A rollout that
    did not render the pre-fill is read as it is, and logged once. (The answers are re-ranked lists,
    which need no retrieval service; the reading of the think block does not depend on the task.)"""
    record = TaskRecord("s", "esci", "search", {"B1": 1.0}, query="red pen")
    fmt = get_format("paper_sparse")
    rerank_items = '{"reranked_items": ["Item_2", "Item_1", "Item_3"]}'
    continuation = f"pens come in colours.</think>\n<answer>{rerank_items}</answer><|im_end|>"
    whole = f"<think>pens come in colours.</think>\n<answer>{rerank_items}</answer><|im_end|>"
    extra_info = {"prompt_format": "rerank", "candidate_ids": ITEMS}
    truth = json.dumps(RECORD.qrels)
    prefilled = fmt.render(tokenizer, record)
    plain = get_format("rerank").render(tokenizer, RECORD)
    assert prefilled.endswith("Let me solve this step by step.\n<think>")
    assert score(manager, sample(tokenizer, prefilled, continuation, extra_info, truth))["reward_score"] == pytest.approx(1.1)
    assert score(manager, sample(tokenizer, prefilled, whole, extra_info, truth))["reward_score"] == -2.0  # 2nd <think>
    assert score(manager, sample(tokenizer, plain, whole, extra_info, truth))["reward_score"] == pytest.approx(1.1)
    assert score(manager, sample(tokenizer, plain, continuation, extra_info, truth))["reward_score"] == -2.0
    # a paper format whose rollout lacked the pre-fill: scored as written, and said once
    paper_extra = {"prompt_format": "paper_sparse"}
    no_prefill = prefilled[: -len(fmt.assistant_prefill)]
    with caplog.at_level(logging.WARNING, logger="verl_rec.integration.reward_manager"):
        for _ in range(2):
            out = score(manager, sample(tokenizer, no_prefill, "junk", paper_extra, '["B1"]'))
            assert out["reward_score"] == -2.0
    assert caplog.text.count("did not render the pre-fill") == 1


def test_a_prefill_that_goes_past_think_opens_it_when_the_prompt_ends_with_all_of_it(manager, tokenizer):
    """bm25_literature_short pre-fills past ``<think>`` into the answer: a prompt that ends with the
    whole pre-fill opened ``<think>`` (the output is read after it, FormatSpec.prefill_after_think);
    one without it did not."""
    fmt = get_format("bm25_literature_short")
    record = TaskRecord("v", "vaswani", "search", {"1": 1.0}, query="I need papers on radio waves.")
    prefilled = fmt.render(tokenizer, record)
    assert prefilled.endswith(fmt.assistant_prefill) and not prefilled.rstrip().endswith("<think>")
    item = sample(tokenizer, prefilled, 'radio waves"}</answer>', {"prompt_format": fmt.name}, '{"1": 1}')[-1:][0]
    assert manager.prompt_opens_think(item, fmt)
    bare = sample(tokenizer, prefilled[: -len(fmt.assistant_prefill)], "x", {"prompt_format": fmt.name}, '{"1": 1}')
    assert not manager.prompt_opens_think(bare[-1:][0], fmt)
