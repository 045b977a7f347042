"""GRPO-shaped model outputs for the reward benchmark.

One GRPO step of the benchmark is ``samples_per_step`` (640) model outputs: prompts of
``group_size`` (12) rollouts each, in order (the last group is cut to fill the step exactly,
53 full groups + 4). Each prompt has 1 to 3 target products (an ESCI query's Exact items: the
product the prompt was written from, sometimes 1-2 more of its category) drawn from the first
``pool`` products of the catalog, so the same steps run on every catalog size.

The rollouts of one prompt repeat each other in part, as sampled policies do (temperature 0.6):
a group holds 4-10 distinct short queries, or 8-12 distinct long ones, the rest are exact
repeats. Two query lengths:

* ``short``: 3-8 words from the target's title (brand, model token, title words) and
  description, with some words of its category (what an untrained policy writes);
* ``long``: ~180 words (150-210), a keyword dump of the target's title (repeated), description
  words, category and general words (what Rec-R1's trained policy wrote: the reward hacking
  listed in ``docs/fidelity.md``).

Outputs look like ``<think>...</think>\\n<answer>{"query": "..."}</answer><|im_end|>``; about 2 %
are malformed under the released format rule (missing tag, broken JSON, a repeated tag) and score -2 in
every path.
Everything is deterministic in ``seed`` and the step index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.catalog import FUNCTION_WORDS, Vocabulary, build_vocabulary, read_products

SAMPLES_PER_STEP = 640
GROUP_SIZE = 12
LENGTHS = ("short", "long")
_FUNCTION = frozenset(FUNCTION_WORDS)
_THINK_WORDS = ("the shopper wants a product like this so the query should name the brand the model and the "
                "most specific words of the title and leave out generic words that match too many products").split()


@dataclass(frozen=True)
class Sample:
    prompt: int  # global prompt number (a GRPO group)
    text: str  # the model output, as decoded
    query: str | None  # the query inside the answer; None for a malformed output
    targets: tuple[str, ...]  # ground-truth product ids (binary relevance)


@dataclass(frozen=True)
class Step:
    index: int
    length: str
    samples: list[Sample] = field(default_factory=list)

    def well_formed_queries(self) -> list[str]:
        return [s.query for s in self.samples if s.query is not None]

    def unique_queries(self) -> list[str]:
        """Distinct well-formed queries, first-seen order (what an engine must run at least)."""
        return list(dict.fromkeys(self.well_formed_queries()))


@dataclass
class QueryFactory:
    """Writes steps of model outputs for one catalog (products from its first ``pool`` ones)."""

    catalog: Path
    pool: int = 100_000
    seed: int = 0
    samples_per_step: int = SAMPLES_PER_STEP
    group_size: int = GROUP_SIZE
    malformed_share: float = 0.02

    def __post_init__(self) -> None:
        rows = read_products(self.catalog, self.pool)
        self.pool = len(rows)
        self._ids = [r[0] for r in rows]
        self._titles = [r[1].lower().split() for r in rows]
        self._descs = [[w for w in r[2].split() if w not in _FUNCTION] for r in rows]
        self._cats = np.load(Path(self.catalog) / "categories.npy", mmap_mode="r")[: self.pool].astype(np.int64)
        self._by_cat = {int(c): np.flatnonzero(self._cats == c) for c in np.unique(self._cats)}
        self._vocab: Vocabulary = build_vocabulary(self.seed)
        self._general = np.arange(len(FUNCTION_WORDS), 20_000)

    # -- queries ----------------------------------------------------------------------------
    def _topic_words(self, rng: np.random.Generator, cat: int, n: int) -> list[str]:
        ranks = np.minimum(np.searchsorted(self._vocab.topic_cdf, rng.random(n)), len(self._vocab.topic_cdf) - 1)
        return self._vocab.words[self._vocab.topic_ids[cat, ranks]].tolist()

    def _short_query(self, rng: np.random.Generator, p: int) -> str:
        title, desc, cat = self._titles[p], self._descs[p], int(self._cats[p])
        words: list[str] = []
        for _ in range(int(rng.integers(3, 9))):
            u = rng.random()
            if u < 0.55 or not desc:
                words.append(title[int(rng.integers(len(title)))])
            elif u < 0.8:
                words.append(desc[int(rng.integers(len(desc)))])
            else:
                words.extend(self._topic_words(rng, cat, 1))
        words = list(dict.fromkeys(words))
        while len(words) < 3:
            words.extend(self._topic_words(rng, cat, 1))
            words = list(dict.fromkeys(words))
        return " ".join(words)

    def _long_query(self, rng: np.random.Generator, p: int) -> str:
        title, desc, cat = self._titles[p], self._descs[p], int(self._cats[p])
        n = int(np.clip(rng.normal(180, 15), 150, 210))
        words = list(title) * 2
        n_desc = int(0.3 * n)
        if desc:
            words += [desc[i] for i in rng.integers(len(desc), size=n_desc)]
        n_general = int(0.1 * n)
        words += self._vocab.words[rng.choice(self._general, size=n_general)].tolist()
        words += self._topic_words(rng, cat, max(0, n - len(words)))
        order = rng.permutation(len(words))
        return " ".join(words[i] for i in order[:n])

    # -- outputs ----------------------------------------------------------------------------
    @staticmethod
    def _output(rng: np.random.Generator, query: str, malformed: bool) -> str:
        think = " ".join(_THINK_WORDS[: int(rng.integers(12, len(_THINK_WORDS) + 1))])
        answer = json.dumps({"query": query})
        if malformed:
            kind = int(rng.integers(4))
            if kind == 0:
                return f"<think>{think}</think>\n{answer}<|im_end|>"  # no answer tags
            if kind == 1:
                return f"<think>{think}</think>\n<answer>{answer[:-2]}</answer><|im_end|>"  # broken JSON
            if kind == 2:
                return f"<think>{think}\n<answer>{answer}</answer><|im_end|>"  # </think> missing
            return f"<think>{think}</think><think>again</think>\n<answer>{answer}</answer><|im_end|>"
        return f"<think>{think}</think>\n<answer>{answer}</answer><|im_end|>"

    def _targets(self, rng: np.random.Generator, p: int) -> tuple[str, ...]:
        extra = int(rng.choice(3, p=[0.6, 0.3, 0.1]))
        same = self._by_cat[int(self._cats[p])]
        others = [int(i) for i in rng.choice(same, size=extra, replace=False) if int(i) != p] if extra else []
        return tuple(dict.fromkeys([self._ids[p], *(self._ids[i] for i in others)]))

    def step(self, index: int, length: str) -> Step:
        """Step ``index`` (0, 1, ...) of ``length`` queries; deterministic."""
        if length not in LENGTHS:
            raise ValueError(f"length must be one of {LENGTHS}, got {length!r}")
        rng = np.random.default_rng([self.seed, 31337, index, LENGTHS.index(length)])
        write = self._short_query if length == "short" else self._long_query
        lo, hi = (4, 11) if length == "short" else (8, 13)
        samples: list[Sample] = []
        groups = -(-self.samples_per_step // self.group_size)
        for g in range(groups):
            prompt = index * groups + g
            p = int(rng.integers(self.pool))
            targets = self._targets(rng, p)
            distinct = min(self.group_size, int(rng.integers(lo, hi)))
            queries = list(dict.fromkeys(write(rng, p) for _ in range(distinct)))
            weights = rng.dirichlet(np.ones(len(queries)))
            picks = list(range(len(queries))) + list(rng.choice(len(queries), size=self.group_size - len(queries), p=weights))
            for j in rng.permutation(picks).tolist():
                malformed = bool(rng.random() < self.malformed_share)
                query = queries[j]
                samples.append(Sample(prompt, self._output(rng, query, malformed), None if malformed else query, targets))
        return Step(index, length, samples[: self.samples_per_step])

    def steps(self, indices: Sequence[int], length: str) -> list[Step]:
        return [self.step(i, length) for i in indices]


def describe(step: Step) -> dict[str, float]:
    """Shape of a step: samples, well-formed, unique queries, words per query."""
    queries = step.well_formed_queries()
    return {"samples": len(step.samples), "well_formed": len(queries), "unique_queries": len(step.unique_queries()),
            "words_per_query": float(np.mean([len(q.split()) for q in queries])) if queries else 0.0,
            "prompts": len({s.prompt for s in step.samples})}
