"""Teach the tiny local model the agent's syntax: tool calls, reading a result block, the final answer.

Like :mod:`verl_rec.devkit.format_warmup`, for CPU smoke runs and tests only: a random model
never writes a well-formed ``<tool_call>``, so an agent run would have no calls to train on.
Episodes are made up from task records: 0 to ``max_searches`` calls (none in a fifth of them,
else uniform), each query a random subset of the record's query words, each answered by a
result block in the tool's real format listing RANDOM catalog products (never what the query
retrieves), then ``<think>...</think><answer>{"query": <the record's query>}</answer>``. The model learns the
format only; which words retrieve well is left to RL.

Token sequences are built as veRL's agent loop builds them at run time (the prompt with the
chat template, each assistant turn as generated tokens ending in EOS, each tool message as the
chat template's continuation after the turn), and the loss covers the assistant turns only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from verl_rec.agent.protocol import SEARCH_TOOL_SCHEMA, render_results, tool_call_text
from verl_rec.agent.tool_settings import SearchToolSettings
from verl_rec.devkit.format_warmup import train_sequences
from verl_rec.retrieval.corpus import iter_corpus
from verl_rec.retrieval.doc_texts import short_text
from verl_rec.tasks.formats import get_format
from verl_rec.tasks.records import TaskRecord

#: one assistant turn and the tool's reply to it (None: the final turn)
Turn = tuple[str, str | None]


def agent_corpus(prompt_format: str = "bm25_agent", repeats: int = 4) -> list[str]:
    """Text an agent run repeats (the format's instructions, a call, a result block, the answer
    tags), for :func:`verl_rec.devkit.tiny_model.build_tiny_model`'s ``extra_corpus``: with it,
    the tiny tokenizer writes ``<tool_call>`` and ``"arguments"`` as a few tokens, not as 40 bytes."""
    fmt = get_format(prompt_format)
    record = TaskRecord("example", "example", fmt.task, {"B0": 1.0}, query="wireless controller black")
    prompt = "\n".join(m["content"] for m in fmt.messages(record))
    result, _ = render_results([("B000000001", "Acme Pro Wireless Controller Black")] * 3, 1, 2, SearchToolSettings())
    episode = "\n".join([tool_call_text("wireless controller"), result, "<think>answer</think>",
                         '<answer>{"query": "wireless controller"}</answer>'])
    return [prompt, episode] * repeats


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tools=[SEARCH_TOOL_SCHEMA], tokenize=False,
                                         add_generation_prompt=generation_prompt)


def episode_tokens(tokenizer, prompt: list[dict[str, str]], turns: Sequence[Turn]) -> tuple[list[int], list[int]]:
    """Token ids of a whole episode and its loss mask (1 on the assistant's own tokens).

    Each assistant turn is its text's tokens plus EOS (what the rollout generates); the tool
    reply is the chat template's text after that turn, from the end of the EOS token to the
    next assistant header, tokenized (what veRL's agent loop appends, with ``response_mask`` 0).
    """
    ids = list(tokenizer.encode(_render(tokenizer, prompt, True), add_special_tokens=False))
    mask = [0] * len(ids)
    history = list(prompt)
    eos = tokenizer.eos_token
    for text, reply in turns:
        turn = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
        ids += turn
        mask += [1] * len(turn)
        history.append({"role": "assistant", "content": text})
        if reply is None:
            break
        before = _render(tokenizer, history, False)
        history.append({"role": "tool", "content": reply})
        after = _render(tokenizer, history, True)
        if not after.startswith(before) or eos not in before:
            raise ValueError("the chat template does not render a tool reply as a continuation of the episode")
        context = before[before.rindex(eos) + len(eos):] + after[len(before):]
        context_ids = tokenizer.encode(context, add_special_tokens=False)
        ids += context_ids
        mask += [0] * len(context_ids)
    return ids, mask


def make_episodes(records_parquet: str | Path, corpus: str | Path, prompt_format: str = "bm25_agent",
                  max_searches: int = 2, settings: SearchToolSettings = SearchToolSettings(),
                  count_tokens: Any = None, seed: int = 0,
                  no_search_share: float = 0.2) -> list[tuple[list[dict[str, str]], list[Turn]]]:
    """(prompt messages, turns) per record: a format-only episode (see the module docstring);
    ``no_search_share`` of them answer at once, the others make 1 to ``max_searches`` calls."""
    from verl_rec.agent.protocol import approximate_tokens

    rng = np.random.default_rng(seed)
    fmt = get_format(prompt_format)
    titles = [(doc_id, short_text(text, 120)) for doc_id, text in iter_corpus(corpus)]
    if not titles:
        raise ValueError(f"{corpus}: no documents to show in made-up results")
    episodes = []
    for i, row in pd.read_parquet(records_parquet).iterrows():
        record = TaskRecord.from_row(row.to_dict(), where=f"{records_parquet} row {i}")
        words = record.query.split() or ["product"]
        n_calls = 0 if rng.random() < no_search_share else int(rng.integers(1, max_searches + 1))
        turns: list[Turn] = []
        for call in range(1, n_calls + 1):
            picked = sorted(rng.choice(len(words), size=int(rng.integers(1, len(words) + 1)), replace=False))
            query = " ".join(words[j] for j in picked)
            shown = [titles[j] for j in rng.choice(len(titles), size=min(settings.top_k, len(titles)), replace=False)]
            reply, _ = render_results(shown, call, max_searches, settings, count_tokens or approximate_tokens)
            turns.append((f"<think>search</think>\n{tool_call_text(query)}", reply))
        answer = json.dumps({"query": record.query})
        turns.append((f"<think>answer</think>\n<answer>{answer}</answer>", None))
        episodes.append((fmt.messages(record), turns))
    return episodes


def warm_up_agent(model_dir: str | Path, records_parquet: str | Path, corpus: str | Path,
                  prompt_format: str = "bm25_agent", max_searches: int = 2,
                  settings: SearchToolSettings = SearchToolSettings(), steps: int = 300, batch_size: int = 8,
                  lr: float = 3e-3, seed: int = 0) -> Path:
    """Fine-tune ``model_dir`` in place on made-up agent episodes; returns ``model_dir``.

    ``max_searches`` and ``settings`` should be the run's (``multi_turn.max_user_turns``, the
    tool config), so that the result blocks look like the ones the run shows.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    count = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    episodes = make_episodes(records_parquet, corpus, prompt_format, max_searches, settings, count, seed)
    sequences = [episode_tokens(tokenizer, prompt, turns) for prompt, turns in episodes]
    return train_sequences(model_dir, sequences, steps, batch_size, lr, seed)  # one thread: a 100k-parameter model
