"""A small retrieval task that a CPU-sized policy can learn in minutes: say it in the catalog's words.

The catalog has one or more TOPICS. The documents of a topic share one catalog word found in no
other document, plus filler words found everywhere; some documents are filler only. A user asks
for a topic in their own words: the record's query holds the topic's CUE word, which no document
contains, among noise words. BM25 with the user's query therefore finds nothing; with the
topic's catalog word it ranks exactly the topic's documents first (NDCG@10 = 1); with another
topic's word, or with a decoy, it finds none of them (NDCG 0).

The format warm-up (:mod:`verl_rec.devkit.format_warmup`) teaches the model to answer with one
word drawn UNIFORMLY from :attr:`VocabTask.menu`: the topics' catalog words and decoys (words no
document has), :data:`MENU_SIZE` in all. It never sees which word retrieves, so the warmed-up
policy finds the documents about once in ``MENU_SIZE`` tries; only the retrieval reward can
teach it more. This is the vocabulary mismatch that query rewriting exists for, cut down to
what a 100k-parameter model learns in a few CPU minutes: it cannot learn to copy words out of
a long prompt, nor, in a dozen steps, to route several cues to several words (measured: with
four topics GRPO settles on one word for all of them), so the learning test uses one topic.

The records are ordinary search task records (:mod:`verl_rec.tasks.records`), rendered by the
recipe's prompt format, and the corpus is the usual JSONL.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from verl_rec.tasks.records import TaskRecord

DATA_SOURCE = "vocab_task"
#: (the user's cue word, the catalog's word for that topic)
TOPICS = (("crimson", "zanuk"), ("chilly", "pelor"), ("rapid", "korvi"), ("tiny", "mesdu"))
DECOYS = ("balto", "firun", "gomex", "tavil", "nuvek", "sorim", "dapen")
MENU_SIZE = 8
NOISE = ("please", "find", "some", "nice", "good", "for", "me", "new", "cheap", "things")
FILLER = ("item", "model", "edition", "series", "version", "style", "design", "unit", "pack", "set")


@dataclass(frozen=True)
class VocabTask:
    """Where the task was written and the words a tokenizer should keep whole."""

    folder: Path
    corpus: Path
    train: Path
    val: Path
    menu: tuple[str, ...]

    def tokenizer_text(self, repeats: int = 30) -> list[str]:
        """Lines that make every task word frequent enough to become one token."""
        words = [*self.menu, *(cue for cue, _ in TOPICS), *NOISE, *FILLER]
        return [" ".join(words) + "\n" + " ".join(f'"{w}"' for w in words) + "\n"] * repeats


def write_vocab_task(out_dir: str | Path, n_topics: int = 1, docs_per_topic: int = 5, filler_docs: int = 20,
                     n_train: int = 64, n_val: int = 16, noise_words: int = 2, seed: int = 0) -> VocabTask:
    """Write ``corpus.jsonl``, ``train.parquet`` and ``val.parquet`` under ``out_dir``.

    Train and validation records cycle through the topics; each draws its own noise words and
    word order, and no validation query is a training query.
    """
    from verl_rec.tasks.record_files import write_records

    if not 1 <= n_topics <= len(TOPICS):
        raise ValueError(f"vocab task: n_topics must be 1..{len(TOPICS)}, got {n_topics}")
    topics = TOPICS[:n_topics]
    rng = random.Random(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    relevant: dict[str, dict[str, float]] = {}
    with (out / "corpus.jsonl").open("w") as handle:
        d = 0
        for cue, word in topics:
            relevant[cue] = {}
            for _ in range(docs_per_topic):
                handle.write(json.dumps({"id": f"doc{d:03d}", "contents": " ".join([word, *rng.sample(FILLER, 4)])}) + "\n")
                relevant[cue][f"doc{d:03d}"] = 1.0
                d += 1
        for _ in range(filler_docs):
            handle.write(json.dumps({"id": f"doc{d:03d}", "contents": " ".join(rng.sample(FILLER, 5))}) + "\n")
            d += 1

    def record(split: str, i: int, avoid: set[str] = frozenset()) -> TaskRecord:
        cue = topics[i % len(topics)][0]
        for _ in range(1000):
            words = [cue, *rng.sample(NOISE, noise_words)]
            rng.shuffle(words)
            if " ".join(words) not in avoid:
                break
        else:
            raise ValueError(f"vocab task: no {split} query left that is not a training query; use more noise words")
        return TaskRecord(f"{split}-{i}", DATA_SOURCE, "search", relevant[cue], query=" ".join(words), split=split)

    train = [record("train", i) for i in range(n_train)]
    seen = {r.query for r in train}
    write_records(train, out / "train.parquet")
    write_records([record("val", i, seen) for i in range(n_val)], out / "val.parquet")
    menu = [word for _, word in topics] + list(DECOYS[: MENU_SIZE - n_topics])
    rng.shuffle(menu)
    return VocabTask(out, out / "corpus.jsonl", out / "train.parquet", out / "val.parquet", tuple(menu))
