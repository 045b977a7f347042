"""Teach a small model the answer FORMAT, never which words retrieve well.

A randomly initialised model writes noise: every rollout is malformed, every reward is -2 and
GRPO has nothing to compare. A few hundred supervised steps on
``<think>find it</think>\\n<answer>{"query": ...}</answer>`` make it emit the format, so that
rewards vary within a group (-2, 0 and 0.1 + metric). The answer it is taught carries no
retrieval knowledge: a UNIFORMLY random choice of words from the prompt's own task input (the
user's query, or the purchase history's titles) or from a word list the caller gives, or a
random order of the candidate ids for re-ranking. The trained policy therefore starts out exploring, and what it learns about which
words retrieve comes from the reward alone.

The prompt is rendered exactly as the rollout renders it: veRL's own prompt builder (the chat
template) followed by the prompt format's pre-filled assistant text, when it has one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from verl_rec.tasks.formats import DEFAULT_FORMAT, PromptFormat, get_format
from verl_rec.tasks.records import TaskRecord

THINK_OPEN = "<think>"
THINK_TEXT = "find it"


@dataclass(frozen=True)
class WarmupTask:
    """Task records and the prompt format they are rendered with."""

    records_parquet: Path | str
    prompt_format: str = DEFAULT_FORMAT


def assistant_prefill(fmt: PromptFormat) -> str:
    """The text a format pre-fills in the assistant turn ('' when it has none)."""
    return getattr(fmt, "assistant_prefill", None) or ""


def task_words(record: TaskRecord) -> list[str]:
    """The words a query may be made of: the user's query, else the purchase history's titles."""
    words = record.query.split()
    return words or " ".join(record.history).split()


def random_answer(record: TaskRecord, fmt: PromptFormat, rng: random.Random, max_words: int | None = None,
                  answer_words: Sequence[str] = ()) -> Any:
    """A uniformly random answer of the right shape: 1..max_words of the task's words (in prompt
    order) or of ``answer_words`` when given, or every candidate id in a random order."""
    if fmt.answer_key != "query":
        ids = [c.id for c in record.candidates]
        rng.shuffle(ids)
        return ids
    words = list(answer_words) or task_words(record) or [record.record_id]  # no words at all: still the format
    size = rng.randint(1, min(len(words), max_words or len(words)))
    keep = sorted(rng.sample(range(len(words)), size))
    return " ".join(words[i] for i in keep)


def response_text(fmt: PromptFormat, answer: Any) -> str:
    """What the model should write after the prompt (and after the format's pre-fill)."""
    full = f'{THINK_OPEN}{THINK_TEXT}</think>\n<answer>{json.dumps({fmt.answer_key: answer})}</answer>'
    if assistant_prefill(fmt).rstrip().endswith(THINK_OPEN):
        return full[len(THINK_OPEN):]
    return full


def read_examples(records_parquet: str | Path, prompt_format: str = DEFAULT_FORMAT) -> list[tuple[TaskRecord, PromptFormat]]:
    """The task records of a file, each with the format its prompt is rendered in."""
    fmt = get_format(prompt_format)
    return [(TaskRecord.from_row(row.to_dict(), where=f"{records_parquet} row {i}"), fmt)
            for i, row in pd.read_parquet(records_parquet).iterrows()]


def format_examples(records_parquet: str | Path, prompt_format: str = DEFAULT_FORMAT, seed: int = 0,
                    max_words: int | None = None, answer_words: Sequence[str] = ()) -> list[tuple[list[dict], str, str]]:
    """(chat messages, pre-fill, target response) triples, one per task record."""
    rng = random.Random(seed)
    return [(fmt.messages(record), assistant_prefill(fmt),
             response_text(fmt, random_answer(record, fmt, rng, max_words, answer_words)))
            for record, fmt in read_examples(records_parquet, prompt_format)]


def rollout_prompt_ids(tokenizer: Any, model_type: str | None, messages: list[dict], prefill: str = "",
                       chat_template_kwargs: dict | None = None) -> list[int]:
    """The prompt's token ids as the rollout builds them: veRL's prompt builder, then the pre-fill."""
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    builder = create_continuous_token_builder(tokenizer, hf_model_type=model_type,
                                              chat_template_kwargs=chat_template_kwargs or {})
    ids = list(builder.build_initial_tokens(messages))
    if prefill:
        ids += tokenizer(prefill, add_special_tokens=False)["input_ids"]
    return ids


def warm_up_format(model_dir: str | Path, records_parquet: str | Path, prompt_format: str = DEFAULT_FORMAT,
                   **options: Any) -> Path:
    """:func:`warm_up_formats` on one task."""
    return warm_up_formats(model_dir, [WarmupTask(records_parquet, prompt_format)], **options)


def warm_up_formats(model_dir: str | Path, tasks: Sequence[WarmupTask], steps: int = 300, batch_size: int = 8,
                    lr: float = 3e-3, seed: int = 0, max_words: int | None = None,
                    answer_words: Sequence[str] = (), every_answer: bool = False, threads: int = 1) -> Path:
    """Fine-tune ``model_dir`` in place on the formats of ``tasks``; returns ``model_dir``.

    Every epoch each record gets a fresh random answer, so the model learns
    the spread of answers rather than one answer per prompt. Prompts are kept whole:
    truncating them shifts token positions and the model then fails to produce the format at
    the real positions. ``every_answer`` (one-word answers from ``answer_words``): each picked
    prompt is trained with every word of the list in the same batch, so the answer slot's target
    is exactly uniform; with one random word per row the last batches' draws leave the model
    preferring some word per prompt, and at the recipe's temperature 0.6 a GRPO group then
    often holds one answer eight times, which has no advantage. ``threads``: 1 suits the dev kit's 100k-parameter model (more threads
    only spin: measured 8x more CPU with 2); a real model wants the machine's cores.
    """
    import torch

    torch.manual_seed(seed)
    if every_answer and (not answer_words or max_words != 1):
        raise ValueError("format warm-up: every_answer needs answer_words and max_words=1")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(Path(model_dir), tasks, steps, batch_size, lr, seed, max_words, tuple(answer_words),
                      every_answer)
    finally:
        torch.set_num_threads(previous)


def _train(model_dir: Path, tasks: Sequence[WarmupTask], steps: int, batch_size: int, lr: float, seed: int,
           max_words: int | None, answer_words: tuple[str, ...], every_answer: bool = False) -> Path:
    """Teacher-forced cross-entropy on the response tokens only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    model_type = model.config.model_type
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    examples = [example for task in tasks for example in read_examples(task.records_parquet, task.prompt_format)]
    if not examples:
        raise ValueError(f"format warm-up: no task records in {[str(t.records_parquet) for t in tasks]}")
    prompts = [rollout_prompt_ids(tokenizer, model_type, fmt.messages(record), assistant_prefill(fmt))
               for record, fmt in examples]
    rng = random.Random(seed)

    def draw_rows() -> list[tuple[list[int], list[int]]]:
        responses = [response_text(fmt, random_answer(record, fmt, rng, max_words, answer_words)) + tokenizer.eos_token
                     for record, fmt in examples]
        return [(prompt, tokenizer(response, add_special_tokens=False)["input_ids"])
                for prompt, response in zip(prompts, responses)]

    def every_answer_rows(i: int) -> list[tuple[list[int], list[int]]]:
        record, fmt = examples[i]
        return [(prompts[i], tokenizer(response_text(fmt, word) + tokenizer.eos_token, add_special_tokens=False)["input_ids"])
                for word in answer_words]

    rows = draw_rows()
    epoch_steps = max(1, len(rows) // batch_size)
    model.train()
    for step in range(steps):
        if step and step % epoch_steps == 0 and not every_answer:
            rows = draw_rows()
        picks = torch.randint(len(rows), (batch_size,), generator=generator).tolist()
        batch = [row for i in picks for row in every_answer_rows(i)] if every_answer else [rows[i] for i in picks]
        width = max(len(prompt) + len(response) for prompt, response in batch)
        input_ids = torch.full((len(batch), width), pad)
        labels = torch.full((len(batch), width), -100)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (prompt, response) in enumerate(batch):
            ids = prompt + response
            input_ids[b, : len(ids)] = torch.tensor(ids)
            labels[b, len(prompt) : len(ids)] = torch.tensor(response)
            attention[b, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(model_dir)
    return model_dir
