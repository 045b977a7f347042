"""Named prompt formats: the words the policy reads, and the answer the reward checks.

Each format knows its task inputs, its system and user text, and the :class:`FormatSpec`
(answer key, think block) that the reward enforces: the dataset records the format name in
``extra_info["prompt_format"]`` and the reward looks the spec up here (:func:`format_spec`),
so the reward checks exactly the format the prompt asked for. :data:`DEFAULT_FORMAT` is the
format of a recipe, dataset row or reward call that names none; :data:`TASK_FORMATS` the one
an evaluation reads each task's outputs with. BM25 formats say plainly that the engine is
bag-of-words: Boolean operators and quotes have no effect there (Rec-R1 defect 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

from verl_rec.agent.prompts import SEARCH_INSTRUCTIONS
from verl_rec.tasks.records import TaskRecord

DEFAULT_FORMAT = "bm25_query"

_OUTPUT_RULES = (
    "First think step by step inside <think> </think>. Then give your final answer inside "
    "<answer> </answer> as a JSON object, for example: <answer>{example}</answer>. "
    "Write nothing after </answer>."
)


@dataclass(frozen=True)
class FormatSpec:
    """What the prompt asked for; the reward checks exactly this (:func:`verl_rec.reward.parsing.parse_output`)."""

    answer_key: str = "query"
    require_think: bool = True
    think_prefilled: bool = False
    max_query_words: int | None = None


@dataclass(frozen=True)
class PromptFormat:
    name: str
    task: str
    system: str
    render_user: Callable[[TaskRecord], str]
    answer_key: str = "query"
    example: str = '{"query": "..."}'

    @property
    def spec(self) -> FormatSpec:
        return FormatSpec(answer_key=self.answer_key, require_think=True)

    def messages(self, record: TaskRecord) -> list[dict[str, str]]:
        """Chat messages for veRL's ``prompt`` column."""
        rules = _OUTPUT_RULES.format(example=self.example)
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": f"{self.render_user(record)}\n\n{rules}"},
        ]


def _numbered(lines: list[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))


def _bm25_user(record: TaskRecord) -> str:
    return (
        f'A shopper typed this into a product search box: "{record.query}"\n'
        "Write the search query that will make the engine rank the products this shopper wants "
        "as high as possible."
    )


def _bm25_agent_user(record: TaskRecord) -> str:
    return f"{_bm25_user(record)}\n{SEARCH_INSTRUCTIONS}"


def _dense_user(record: TaskRecord) -> str:
    return (
        f'A shopper typed this into a product search box: "{record.query}"\n'
        "Rewrite it into a short, fluent description of the product the shopper wants, adding "
        "the attributes (type, use, material, size, brand) that such a product would mention."
    )


def _review_user(record: TaskRecord) -> str:
    return (
        f'A customer described a need in their own words: "{record.query}"\n'
        "Write, in the voice of a product review, a description of the item that would satisfy "
        "this customer: what it is, what it is used for, and its key features."
    )


def _seqrec_user(record: TaskRecord) -> str:
    return (
        "A customer bought these items, oldest first:\n"
        f"{_numbered(list(record.history))}\n"
        "Write a search query describing the item this customer is most likely to buy next."
    )


def _rerank_user(record: TaskRecord) -> str:
    listing = "\n".join(f"[{c.id}] {c.text}" for c in record.candidates)
    return (
        f'Search query: "{record.query}"\nCandidate products:\n{listing}\n'
        "Rank ALL candidate ids from most to least relevant to the query."
    )


_BM25_SYSTEM = (
    "You write queries for a BM25 keyword search engine over a product catalog. The engine is "
    "bag-of-words: it matches stemmed words, ignores word order, quotes and Boolean operators "
    "(AND, OR, NOT have no effect), and favours rare words that appear in the wanted products."
)
_DENSE_SYSTEM = (
    "You write queries for a neural (dense embedding) product search engine. It compares the "
    "meaning of your text with product descriptions, so fluent, specific descriptions work best."
)
_RERANK_SYSTEM = "You are a product search expert who orders candidate products by relevance to a query."

FORMATS: dict[str, PromptFormat] = {
    f.name: f
    for f in (
        PromptFormat("bm25_query", "search", _BM25_SYSTEM, _bm25_user),
        PromptFormat("bm25_agent", "search", _BM25_SYSTEM, _bm25_agent_user),  # verl_rec.agent: may search first
        PromptFormat("dense_expansion", "search", _DENSE_SYSTEM, _dense_user),
        PromptFormat("review_rewrite", "search", _DENSE_SYSTEM, _review_user),
        PromptFormat("seqrec_query", "seqrec", _BM25_SYSTEM, _seqrec_user),
        PromptFormat("seqrec_dense_query", "seqrec", _DENSE_SYSTEM, _seqrec_user),
        PromptFormat(
            "rerank",
            "rerank",
            _RERANK_SYSTEM,
            _rerank_user,
            answer_key="reranked_items",
            example='{"reranked_items": ["Item_3", "Item_1", "..."]}',
        ),
    )
}


#: the format each task's outputs are read with when none is named (``verl_rec.evaluate``)
TASK_FORMATS = {"search": DEFAULT_FORMAT, "seqrec": "seqrec_query", "rerank": "rerank"}


def get_format(name: str) -> PromptFormat:
    """The format called ``name``; an unknown name fails with the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown prompt format {name!r}; known formats: {sorted(FORMATS)}") from None


@lru_cache(maxsize=256)  # the reward looks a format up for every sample
def format_spec(name: str, think_prefilled: bool = False, max_query_words: int | None = None) -> FormatSpec:
    """What the reward checks for outputs of format ``name``, with a recipe's settings applied
    (the prompt pre-fills ``<think>``; a cap on query words)."""
    return replace(get_format(name).spec, think_prefilled=think_prefilled, max_query_words=max_query_words)
