"""Teach a tiny local model the answer format, so CPU smoke runs see real reward variance.

A randomly initialised model writes noise: every rollout is malformed, every reward is -2 and
GRPO has nothing to compare. A few hundred supervised steps on ``prompt -> <think>..</think>
<answer>{"query": <the user's query>}</answer>`` make it emit the format most of the time with
noisy queries, so rewards vary within a group (-2, 0 and 0.1 + NDCG). This is for CPU smoke
runs and tests only; real runs start from an instruction model.

Prompts are rendered exactly as the rollout renders them (:meth:`PromptFormat.render`: chat
template, then the format's pre-fill); after a pre-fill that opens ``<think>`` the target
continues inside it (``find it</think>...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from verl_rec.tasks.formats import DEFAULT_FORMAT, get_format
from verl_rec.tasks.records import TaskRecord


def format_examples(records_parquet: str | Path, prompt_format: str = DEFAULT_FORMAT) -> list[tuple[list[dict], str]]:
    """(chat messages, target response) pairs from task records; the response continues the
    format's pre-fill when it opens ``<think>``."""
    fmt = get_format(prompt_format)
    opening = "" if fmt.think_prefilled else "<think>"
    pairs = []
    for i, row in pd.read_parquet(records_parquet).iterrows():
        record = TaskRecord.from_row(row.to_dict(), where=f"{records_parquet} row {i}")
        answer = json.dumps({fmt.answer_key: record.query if fmt.answer_key == "query" else [c.id for c in record.candidates]})
        pairs.append((fmt.messages(record), f"{opening}find it</think>\n<answer>{answer}</answer>"))
    return pairs


def warm_up_format(model_dir: str | Path, records_parquet: str | Path, prompt_format: str = DEFAULT_FORMAT,
                   steps: int = 300, batch_size: int = 8, lr: float = 3e-3, seed: int = 0) -> Path:
    """Fine-tune ``model_dir`` in place on the format; returns ``model_dir``.

    Prompts are kept whole: truncating them shifts token positions and the model then fails
    to produce the format at the real positions.
    """
    import torch

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 100k-parameter model: extra threads only spin (measured 8x more CPU with 2)
    try:
        return _train(model_dir, records_parquet, prompt_format, steps, batch_size, lr, seed)
    finally:
        torch.set_num_threads(threads)


def _train(model_dir, records_parquet, prompt_format: str, steps: int, batch_size: int, lr: float, seed: int) -> Path:
    """Teacher-forced cross-entropy on the response tokens only."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    fmt = get_format(prompt_format)
    sequences = []
    for messages, response in format_examples(records_parquet, prompt_format):
        prompt_ids = tokenizer(fmt.render(tokenizer, messages), add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(response + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        sequences.append((list(prompt_ids) + response_ids, [0] * len(prompt_ids) + [1] * len(response_ids)))
    return train_sequences(model_dir, sequences, steps, batch_size, lr, seed)


def train_sequences(model_dir, sequences: list[tuple[list[int], list[int]]], steps: int, batch_size: int, lr: float,
                    seed: int) -> Path:
    """Fit ``model_dir`` in place on ``(token ids, loss mask)`` pairs: cross-entropy where the mask is 1."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        picks = torch.randint(len(sequences), (batch_size,), generator=generator).tolist()
        width = max(len(sequences[i][0]) for i in picks)
        input_ids = torch.full((batch_size, width), tokenizer.pad_token_id or 0)
        labels = torch.full((batch_size, width), -100)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        for b, i in enumerate(picks):
            ids, mask = sequences[i]
            input_ids[b, : len(ids)] = torch.tensor(ids)
            labels[b, : len(ids)] = torch.where(torch.tensor(mask, dtype=torch.bool), torch.tensor(ids), -100)
            attention[b, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(model_dir)
    return Path(model_dir)
