"""Teach an instruction model the answer FORMAT with queries it wrote itself: no answer is given.

SmolLM2-135M-Instruct asked for our format almost never writes it, so every reward is -2 and
GRPO has nothing to compare. This warm-up asks the same model, with a plain prompt and no
format ("Write a search engine query for this request ... Reply with the query only."), for a
sampled query per training request, and fine-tunes it to write that same query inside the
format (a fixed one-line think, then the JSON answer). The answers are the model's own
zero-shot behaviour, moved into the format: not a copy or a subset of the request by
construction, and never chosen by their retrieval score. :func:`answer_overlap` measures how
close to the request they come; the warmed-up policy's retrieval quality is measured on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from verl_rec.devkit.format_warmup import TokenRow, read_examples, response_text, rollout_prompt_ids, train_sequences
from verl_rec.evaluation.generate import Sampling, generate_samples
from verl_rec.tasks.records import TaskRecord

PLAIN_INSTRUCTION = 'Write a search engine query for this request:\n"{text}"\nReply with the query only.'


def plain_conversation(record: TaskRecord) -> list[dict[str, str]]:
    """The format-free prompt the model's own queries are drawn with."""
    return [{"role": "user", "content": PLAIN_INSTRUCTION.format(text=record.query)}]


def own_query(text: str) -> str:
    """The query in a plain reply: its first non-empty line, without surrounding quotes."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    return " ".join(line.strip().strip('"\'').split())


def answer_overlap(requests: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """How close the answers are to the requests: exact copies, word subsets, mean words."""
    def words(text: str) -> list[str]:
        return [w.strip(".,?!:;\"'").lower() for w in text.split() if w.strip(".,?!:;\"'")]

    pairs = list(zip(requests, answers))
    copies = sum(words(r) == words(a) for r, a in pairs)
    subsets = sum(set(words(a)) <= set(words(r)) for r, a in pairs)
    return {"answers": len(pairs), "exact_copy_share": copies / len(pairs), "word_subset_share": subsets / len(pairs),
            "mean_answer_words": sum(len(words(a)) for _, a in pairs) / len(pairs),
            "mean_request_words": sum(len(words(r)) for r, _ in pairs) / len(pairs)}


def warm_up_with_own_queries(model_dir: str | Path, records_parquet: str | Path, prompt_format: str,
                             every: int = 2, steps: int = 48, batch_size: int = 8, lr: float = 1e-5,
                             sampling: Sampling = Sampling(n=1, temperature=0.8, top_p=0.95, seed=0),
                             max_new_tokens: int = 48, threads: int = 2,
                             log_path: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune ``model_dir`` in place; returns what was done and measured (for the bench's JSON).

    ``every``: one record in ``every`` of the file (a few hundred rows teach the format).
    Replies with no query are left out and counted (``empty_answers``).
    """
    from transformers import AutoTokenizer

    examples = read_examples(records_parquet, prompt_format)[::every]
    records = [record for record, _ in examples]
    started = time.monotonic()
    replies, _ = generate_samples(str(model_dir), [plain_conversation(r) for r in records], sampling,
                                  max_new_tokens=max_new_tokens, batch_size=16, engine="transformers")
    generated_s = time.monotonic() - started
    answers = [own_query(texts[0]) for texts in replies]
    kept = [(record, fmt, answer) for (record, fmt), answer in zip(examples, answers) if answer]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    sequences: list[TokenRow] = []
    for record, fmt, answer in kept:
        prompt = rollout_prompt_ids(tokenizer, fmt, fmt.messages(record))
        response = tokenizer(response_text(fmt, answer) + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        sequences.append((prompt + response, [0] * len(prompt) + [1] * len(response)))
    if log_path is not None:
        with Path(log_path).open("w", encoding="utf-8") as out:
            for (record, _), reply, answer in zip(examples, replies, answers):
                out.write(json.dumps({"record_id": record.record_id, "request": record.query, "reply": reply[0],
                                      "answer": answer}) + "\n")
    fit_started = time.monotonic()
    train_sequences(model_dir, sequences, steps=steps, batch_size=batch_size, lr=lr, seed=sampling.seed, threads=threads)
    return {"records": len(examples), "every": every, "empty_answers": len(examples) - len(kept), "steps": steps,
            "batch_size": batch_size, "lr": lr, "sampling": sampling.__dict__, "plain_instruction": PLAIN_INSTRUCTION,
            "generate_seconds": generated_s, "fit_seconds": time.monotonic() - fit_started,
            **answer_overlap([r.query for r, _, _ in kept], [a for _, _, a in kept])}
