"""Teach a small model the answer FORMAT, never which words retrieve well.

A randomly initialised model writes noise: every rollout is malformed, every reward is -2 and
GRPO has nothing to compare. A few hundred supervised steps on
``<think>find it</think>\\n<answer>{"query": ...}</answer>`` make it emit the format, so that
rewards vary within a group (-2, 0 and 0.1 + metric). The answer it is taught carries no
retrieval knowledge: a UNIFORMLY random choice of words from the prompt's own task input (the
user's query, or the purchase history's titles) or from a word list the caller gives, or a
random order of the candidate ids for re-ranking. The trained policy therefore starts out
exploring, and what it learns about which words retrieve comes from the reward alone.

Prompts are rendered exactly as the rollout renders them (:meth:`PromptFormat.render`: chat
template, then the format's pre-fill); after a pre-fill that opens ``<think>`` the target
continues inside it (``find it</think>...``). This is for CPU smoke runs and tests only; real
runs start from an instruction model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from verl_rec.tasks.formats import DEFAULT_FORMAT, PromptFormat, get_format
from verl_rec.tasks.records import TaskRecord

THINK_TEXT = "find it"

#: (token ids, loss mask): cross-entropy where the mask is 1
TokenRow = tuple[list[int], list[int]]


@dataclass(frozen=True)
class WarmupTask:
    """Task records and the prompt format they are rendered with."""

    records_parquet: Path | str
    prompt_format: str = DEFAULT_FORMAT


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
    opening = "" if fmt.think_prefilled else "<think>"
    return f"{opening}{THINK_TEXT}</think>\n<answer>{json.dumps({fmt.answer_key: answer})}</answer>"


def rollout_prompt_ids(tokenizer: Any, fmt: PromptFormat, messages: list[dict] | TaskRecord) -> list[int]:
    """The prompt's token ids as the rollout builds them: the rendered prompt, pre-fill included."""
    return list(tokenizer(fmt.render(tokenizer, messages), add_special_tokens=False)["input_ids"])


def read_examples(records_parquet: str | Path, prompt_format: str = DEFAULT_FORMAT) -> list[tuple[TaskRecord, PromptFormat]]:
    """The task records of a file, each with the format its prompt is rendered in."""
    fmt = get_format(prompt_format)
    return [(TaskRecord.from_row(row.to_dict(), where=f"{records_parquet} row {i}"), fmt)
            for i, row in pd.read_parquet(records_parquet).iterrows()]


def warm_up_format(model_dir: str | Path, records_parquet: str | Path, prompt_format: str = DEFAULT_FORMAT,
                   **options: Any) -> Path:
    """:func:`warm_up_formats` on one task."""
    return warm_up_formats(model_dir, [WarmupTask(records_parquet, prompt_format)], **options)


def warm_up_formats(model_dir: str | Path, tasks: Sequence[WarmupTask], steps: int = 300, batch_size: int = 8,
                    lr: float = 3e-3, seed: int = 0, max_words: int | None = None,
                    answer_words: Sequence[str] = (), every_answer: bool = False, threads: int = 1) -> Path:
    """Fine-tune ``model_dir`` in place on the formats of ``tasks``; returns ``model_dir``.

    Every epoch each record gets a fresh random answer, so the model learns the spread of
    answers rather than one answer per prompt. ``every_answer`` (one-word answers from
    ``answer_words``): each picked prompt is trained with every word of the list in the same
    batch, so the answer slot's target is exactly uniform; with one random word per row the
    last batches' draws leave the model preferring some word per prompt, and at the recipes'
    temperature 0.6 a GRPO group then often holds one answer n times: no advantage. Prompts
    are kept whole: truncating them shifts token positions and the model then fails to produce
    the format at the real positions. ``threads``: 1 suits the dev kit's 100k-parameter model
    (more only spin: measured 8x more CPU with 2); a real model wants the machine's cores.
    """
    from transformers import AutoTokenizer

    if every_answer and (not answer_words or max_words != 1):
        raise ValueError("format warm-up: every_answer needs answer_words and max_words=1")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    examples = [example for task in tasks for example in read_examples(task.records_parquet, task.prompt_format)]
    if not examples:
        raise ValueError(f"format warm-up: no task records in {[str(t.records_parquet) for t in tasks]}")
    prompts = [rollout_prompt_ids(tokenizer, fmt, fmt.messages(record)) for record, fmt in examples]
    rng, picker = random.Random(seed), random.Random(seed + 1)

    def row(i: int, answer: Any) -> TokenRow:
        response = tokenizer(response_text(examples[i][1], answer) + tokenizer.eos_token,
                             add_special_tokens=False)["input_ids"]
        return prompts[i] + response, [0] * len(prompts[i]) + [1] * len(response)

    def batches() -> Iterable[list[TokenRow]]:
        epoch_steps = max(1, len(examples) // batch_size)
        answers: list[Any] = []
        for step in range(steps):
            if step % epoch_steps == 0:
                answers = [random_answer(r, f, rng, max_words, answer_words) for r, f in examples]
            picks = [picker.randrange(len(examples)) for _ in range(batch_size)]
            if every_answer:
                yield [row(i, word) for i in picks for word in answer_words]
            else:
                yield [row(i, answers[i]) for i in picks]

    return fit(model_dir, batches(), lr, seed, threads)


def train_sequences(model_dir: str | Path, sequences: list[TokenRow], steps: int, batch_size: int, lr: float,
                    seed: int, threads: int = 1) -> Path:
    """Fit ``model_dir`` in place on fixed sequences, ``batch_size`` drawn at random per step."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batches = ([sequences[i] for i in torch.randint(len(sequences), (batch_size,), generator=generator).tolist()]
               for _ in range(steps))
    return fit(model_dir, batches, lr, seed, threads)


def fit(model_dir: str | Path, batches: Iterable[list[TokenRow]], lr: float, seed: int, threads: int = 1) -> Path:
    """Teacher-forced cross-entropy, AdamW, one optimizer step per batch; saves in place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        model.train()
        for batch in batches:
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.full((len(batch), width), pad)
            labels = torch.full((len(batch), width), -100)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for b, (ids, mask) in enumerate(batch):
                input_ids[b, : len(ids)] = torch.tensor(ids)
                labels[b, : len(ids)] = torch.where(torch.tensor(mask, dtype=torch.bool), torch.tensor(ids), -100)
                attention[b, : len(ids)] = 1
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.save_pretrained(model_dir)
    finally:
        torch.set_num_threads(previous)
    return Path(model_dir)
