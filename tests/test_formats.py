"""Prompt formats: the released Rec-R1 prompts byte for byte, the pre-fill, and our own formats.

The RELEASED_* strings are copies of the released prompts (linjc16/Rec-R1
``src/dataset/*/inst/*/``, with the Qwen ChatML markup written in, as the released code fed
them), with their input placeholder: rendering our paper formats with a ChatML chat template
(Qwen2.5's, which the tiny model's reproduces) must give exactly these strings.
"""

# ruff: noqa: E501  (the released prompts are copied verbatim, long lines included)
from __future__ import annotations

import pytest

from verl_rec.tasks.formats import FORMATS, PAPER_PREFILL, format_spec, get_format
from verl_rec.tasks.records import TaskRecord

RELEASED_SPARSE = """<|im_start|>system
You are a helpful AI assistant. You first think about the reasoning process in the mind and then provide the user with the answer.<|im_end|>
<|im_start|>user
You are an expert in query generation. Given a query, your task is to create query terms to retrieve retrieve the most relevant products, ensuring they best meet customer needs.
Below is the query:
```{user_query}```
Show your work in <think> </think> tags. Your final response must be in JSON format within <answer> </answer> tags. The generated query should use Boolean operators (AND, OR) to structure your query logically. For example,
<answer>
{
    "query": xxx
}
</answer>.<|im_end|>
<|im_start|>assistant
Let me solve this step by step.
<think>"""

RELEASED_ESCI_DENSE = """<|im_start|>system
You are a helpful AI assistant. You first think about the reasoning process in the mind and then provide the user with the answer.<|im_end|>
<|im_start|>user
You are an expert in generating queries for dense retrieval. Given a customer query, your task is to retain the original query while expanding it with additional semantically relevant information, retrieve the most relevant products, ensuring they best meet customer needs. If no useful expansion is needed, return the original query as is.
Below is the query:
```{user_query}```
Show your work in <think> </think> tags. Your final response must be in JSON format within <answer> </answer> tags. For example,
<answer>
{
    "query": xxx
}
</answer>.<|im_end|>
<|im_start|>assistant
Let me solve this step by step.
<think>"""

RELEASED_C4_DENSE = """<|im_start|>system
You are a helpful AI assistant. You first think about the reasoning process in the mind and then provide the user with the answer.<|im_end|>
<|im_start|>user
You are an expert in query rewriting for dense retrieval systems. Rewrite the following product search query as if you are a real customer writing a natural, authentic review after using the product. Maintain the meaning and details of the original query, but shift the tone to be more casual, emotional, and based on personal experience. Include specific comments about product performance that match the query's intent.
# Below is the product search query:
# ```{user_query}```
Show your work in <think> </think> tags. Your final response must be in JSON format within <answer> </answer> tags. For example,
<answer>
{
    "query": xxx
}
</answer>.<|im_end|>
<|im_start|>assistant
Let me solve this step by step.
<think>"""

RELEASED_SEQREC = """<|im_start|>system
You are a helpful AI assistant. You first think about the reasoning process in the mind and then provide the user with the answer.<|im_end|>
<|im_start|>user
You are an intelligent shopping assistant that helps predict what users may want to purchase next. Below is a list of items a user has purchased recently. Your task is to infer one or multiple kinds of products they may want to buy next, and generate relevant query terms that can be used to search for these potential products.
Below is the user purchase history:
```{purchase_history}```
Show your work in <think> </think> tags. Your final response must be in JSON format within <answer> </answer> tags. The generated query should use Boolean operators (AND, OR) to structure your query logically. For example,
<answer>
{
    "query": xxx
}
</answer>.<|im_end|>
<|im_start|>assistant
Let me solve this step by step.
<think>"""

QUERY = "wireless controller for xbox {not a placeholder}"
HISTORY = tuple(f"Title {i}" for i in range(1, 13))  # 12 purchases: the prompt shows the last 10


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from verl_rec.devkit.tiny_model import build_tiny_model

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.mark.parametrize("name, released", [("paper_sparse", RELEASED_SPARSE), ("paper_esci_dense", RELEASED_ESCI_DENSE),
                                            ("paper_c4_dense", RELEASED_C4_DENSE)], ids=["sparse", "esci_dense", "c4_dense"])
def test_paper_search_prompts_are_the_released_ones(tokenizer, name, released):
    record = TaskRecord("r", "esci/Video_Games", "search", {"B1": 1.0}, query=QUERY)
    assert get_format(name).render(tokenizer, record) == released.replace("{user_query}", QUERY)


def test_paper_seqrec_prompt_is_the_released_one(tokenizer):
    record = TaskRecord("r", "seqrec_All_Beauty/test", "seqrec", {"A1": 1.0}, history=HISTORY)
    shown = "\n".join(f"Item {i}: Title {i + 2}" for i in range(1, 11))  # the last 10, renumbered from 1
    assert get_format("paper_seqrec").render(tokenizer, record) == RELEASED_SEQREC.replace("{purchase_history}", shown)


def test_paper_formats_prefill_and_the_reward_reads_outputs_as_continuations():
    paper = sorted(name for name in FORMATS if name.startswith("paper_"))
    assert paper == ["paper_c4_dense", "paper_esci_dense", "paper_seqrec", "paper_sparse"]
    for name in paper:
        fmt = get_format(name)
        assert fmt.assistant_prefill == PAPER_PREFILL == "Let me solve this step by step.\n<think>"
        assert fmt.spec.think_prefilled and format_spec(name).think_prefilled
        assert not format_spec(name, think_prefilled=False).think_prefilled  # what the rollout did wins
        assert "<think>" not in str(fmt.messages(TaskRecord("r", "x", fmt.task, {"a": 1.0}, query="q")))[-20:]
        assert format_spec(name).prefill_after_think == ""  # the paper's pre-fill ends at <think>
    # the quickstart's (tests/test_quickstart_llm.py) and its agent's (below) are pre-filled too
    for name in set(FORMATS) - set(paper) - {"bm25_literature_short", "bm25_literature_agent"}:
        assert get_format(name).assistant_prefill is None and not format_spec(name).think_prefilled


def test_render_without_prefill_is_the_chat_template(tokenizer):
    record = TaskRecord("r", "esci", "search", {"B1": 1.0}, query="red pen")
    messages = get_format("bm25_query").messages(record)
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert get_format("bm25_query").render(tokenizer, record) == expected == get_format("bm25_query").render(tokenizer, messages)


def test_rare_words_hint_only_in_its_named_alternative():
    hinted = [name for name, fmt in FORMATS.items() if "rare words" in fmt.system]
    assert hinted == ["bm25_query_rare_words"]
    for name in ("bm25_query", "seqrec_query"):
        assert "bag-of-words" in FORMATS[name].system and "no effect" in FORMATS[name].system
    # the paper's prompt keeps its request for Boolean operators (the engine drops them: docs/fidelity.md)
    record = TaskRecord("r", "esci", "search", {"B1": 1.0}, query="q")
    assert "Boolean operators (AND, OR)" in get_format("paper_sparse").messages(record)[1]["content"]


def test_each_format_names_the_agent_loop_that_renders_it():
    """The format owns its agent loop: a pre-fill needs the prefill loop, a searching format the search loop."""
    from verl_rec.agent.protocol import tool_call_text
    from verl_rec.tasks.formats import PREFILL_AGENT_LOOP, SEARCH_AGENT_LOOP, PromptFormat

    record = TaskRecord("r", "esci", "search", {"B1": 1.0}, query="q")
    for name, fmt in FORMATS.items():
        expected = PREFILL_AGENT_LOOP if fmt.assistant_prefill else SEARCH_AGENT_LOOP if fmt.searches else None
        assert fmt.agent_loop == expected, name
        # a searching format shows the call syntax, or pre-fills its first turn inside a call
        shown = tool_call_text("your query") in fmt.messages(record)[1]["content"] or bool(fmt.search_prefill)
        assert shown == fmt.searches, name
    assert sorted(name for name, fmt in FORMATS.items() if fmt.searches) == ["bm25_agent", "bm25_literature_agent"]
    with pytest.raises(ValueError, match="verl_rec_prefill"):
        PromptFormat("x", "search", "s", lambda r: "u", assistant_prefill="<think>")


def test_a_search_agents_prefills_go_together_and_need_the_search_loop():
    from verl_rec.tasks.formats import (
        SEARCH_AGENT_LOOP,
        SEARCH_CALL_PREFILL,
        SHORT_ANSWER_PREFILL,
        PromptFormat,
        get_format,
    )

    def user(record):
        return record.query

    with pytest.raises(ValueError, match="go together"):
        PromptFormat("x", "search", "s", user, agent_loop=SEARCH_AGENT_LOOP, search_prefill=SEARCH_CALL_PREFILL)
    with pytest.raises(ValueError, match="only agent loop"):
        PromptFormat("x", "search", "s", user, search_prefill=SEARCH_CALL_PREFILL, answer_prefill=SHORT_ANSWER_PREFILL)
    agent, short = get_format("bm25_literature_agent"), get_format("bm25_literature_short")
    assert agent.spec == short.spec  # the final turn continues the same answer pre-fill as the rewrite's one turn
    assert SEARCH_CALL_PREFILL == '<tool_call>\n{"name": "search", "arguments": {"query": "'
