"""Named prompt formats: the words the policy reads, the agent loop that renders them, and
the answer the reward checks.

Each format knows its task inputs, its system and user text, an optional pre-filled start of
the assistant turn, the agent loop that runs its episodes (:attr:`PromptFormat.agent_loop`)
and the :class:`FormatSpec` (answer key, think block) that the reward enforces. The dataset
records the format name in ``extra_info["prompt_format"]``; the reward manager looks the
format up once per sample and reads everything it needs off it.

Two families: ``paper_*``, the released Rec-R1 prompts verbatim (typos and the Boolean
operators a bag-of-words engine drops included; docs/fidelity.md), pre-filled with
:data:`PAPER_PREFILL`; and ours, plain-spoken about the engine and not pre-filled (but for the
quickstart's ``bm25_literature_short``, pre-filled past ``<think>`` up to the query).
:meth:`PromptFormat.render` gives the exact text the rollout tokenizes (chat template plus
pre-fill): the prefill agent loop, the evaluation's generation and the dev kit use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from verl_rec.agent.protocol import tool_call_text
from verl_rec.tasks.records import TaskRecord

DEFAULT_FORMAT = "bm25_query"

#: the agent loop that renders a format's pre-filled assistant turn (:mod:`verl_rec.integration.prefill_agent_loop`)
PREFILL_AGENT_LOOP = "verl_rec_prefill"
#: the multi-turn loop of the formats whose policy may search first (:mod:`verl_rec.integration.search_agent_loop`)
SEARCH_AGENT_LOOP = "rec_search_agent"

#: the released Rec-R1 prompts end with this start of the assistant turn
PAPER_PREFILL = "Let me solve this step by step.\n<think>"
#: how a model output is checked: the released code's acceptance, or our stricter rule
FORMAT_RULES = ("released", "strict")

_OUTPUT_RULES = (
    "First think step by step inside <think> </think>. Then give your final answer inside "
    "<answer> </answer> as a JSON object, for example: <answer>{example}</answer>. "
    "Write nothing after </answer>."
)


@dataclass(frozen=True)
class FormatSpec:
    """What the prompt asked for; the reward checks exactly this (:func:`verl_rec.reward.parsing.parse_output`).

    ``format_rule``: ``released`` accepts what the released Rec-R1 reward accepts (each tag
    exactly once, in order, any text outside the tags); ``strict`` also rejects text outside
    the tags (and accepts a Markdown code fence around the JSON).
    """

    answer_key: str = "query"
    require_think: bool = True
    think_prefilled: bool = False
    max_query_words: int | None = None
    format_rule: str = "released"
    #: what a pre-fill wrote after its ``<think>`` (a prefilled output continues it); "" for the paper's
    prefill_after_think: str = ""

    def __post_init__(self) -> None:
        if self.format_rule not in FORMAT_RULES:
            raise ValueError(f"format_rule must be one of {FORMAT_RULES}, got {self.format_rule!r}")


@dataclass(frozen=True)
class PromptFormat:
    """One prompt wording. ``render_user`` gives the user turn; ``append_rules`` adds our output
    rules after it (the paper's user text carries its own); ``assistant_prefill`` starts the
    assistant turn (the model continues it).

    ``agent_loop``: the veRL agent loop that renders this format's episodes, ``None`` for veRL's
    own single-turn loop. A pre-fill needs :data:`PREFILL_AGENT_LOOP` (veRL's loops start the
    assistant turn empty); a format that tells the policy it may search needs
    :data:`SEARCH_AGENT_LOOP` (the search tool and the episode the reward scores).
    """

    name: str
    task: str
    system: str
    render_user: Callable[[TaskRecord], str]
    answer_key: str = "query"
    example: str = '{"query": "..."}'
    append_rules: bool = True
    assistant_prefill: str | None = None
    agent_loop: str | None = None
    #: a search agent's pre-fills (:data:`SEARCH_AGENT_LOOP` renders them): its first turn starts
    #: inside a search call, and its final turn, after the last result, inside the answer
    search_prefill: str | None = None
    answer_prefill: str | None = None

    def __post_init__(self) -> None:
        if self.assistant_prefill and self.agent_loop != PREFILL_AGENT_LOOP:
            raise ValueError(f"prompt format {self.name!r} pre-fills the assistant turn: only agent loop "
                             f"{PREFILL_AGENT_LOOP!r} renders that, not {self.agent_loop!r}")
        if (self.search_prefill or self.answer_prefill) and self.agent_loop != SEARCH_AGENT_LOOP:
            raise ValueError(f"prompt format {self.name!r} pre-fills a search agent's turns: only agent loop "
                             f"{SEARCH_AGENT_LOOP!r} renders that, not {self.agent_loop!r}")
        if bool(self.search_prefill) != bool(self.answer_prefill):
            raise ValueError(f"prompt format {self.name!r}: search_prefill and answer_prefill go together (an episode "
                             "whose first turn must search gets its answer pre-filled after the result)")

    @property
    def searches(self) -> bool:
        """The policy may search before it answers: episodes run in :data:`SEARCH_AGENT_LOOP`."""
        return self.agent_loop == SEARCH_AGENT_LOOP

    @property
    def scored_prefill(self) -> str | None:
        """The pre-fill the scored output continues: a search agent's final turn continues its
        ``answer_prefill``, a single-turn output its ``assistant_prefill``."""
        return self.answer_prefill or self.assistant_prefill

    @property
    def think_prefilled(self) -> bool:
        """The pre-fill opens the think block: the output continues after its ``<think>`` (the
        paper's pre-fill ends there; ``bm25_literature_short`` goes on into the answer)."""
        return bool(self.scored_prefill) and "<think>" in self.scored_prefill

    @property
    def spec(self) -> FormatSpec:
        after = self.scored_prefill.split("<think>", 1)[1] if self.think_prefilled else ""
        return FormatSpec(answer_key=self.answer_key, require_think=True, think_prefilled=self.think_prefilled,
                          prefill_after_think=after)

    def spec_for(self, think_prefilled: bool | None = None, max_query_words: int | None = None,
                 format_rule: str = "released") -> FormatSpec:
        """What the reward checks for this format's outputs, with a recipe's settings applied.

        ``think_prefilled=None`` follows the format (its pre-fill opens ``<think>``); ``True`` or
        ``False`` says what the rollout really did (the reward manager reads it off the prompt).
        """
        return _spec_for(self, think_prefilled, max_query_words, format_rule)

    def messages(self, record: TaskRecord) -> list[dict[str, str]]:
        """Chat messages for veRL's ``prompt`` column (the pre-fill is not a message: see :meth:`render`)."""
        user = self.render_user(record)
        if self.append_rules:
            user = f"{user}\n\n{_OUTPUT_RULES.format(example=self.example)}"
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def render(self, tokenizer: Any, messages: list[dict[str, str]] | TaskRecord,
               chat_template_kwargs: Mapping[str, Any] | None = None) -> str:
        """The prompt text the policy continues: the chat template with the generation prompt,
        then the pre-fill. ``messages`` may be a record (rendered with :meth:`messages`)."""
        if isinstance(messages, TaskRecord):
            messages = self.messages(messages)
        text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True,
                                             **dict(chat_template_kwargs or {}))
        return text + (self.assistant_prefill or "")


def _numbered(lines: list[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))


def _bm25_user(record: TaskRecord) -> str:
    return (
        f'A shopper typed this into a product search box: "{record.query}"\n'
        "Write the search query that will make the engine rank the products this shopper wants "
        "as high as possible."
    )


def _literature_user(record: TaskRecord) -> str:
    return (
        f'A researcher sent this request to the library\'s search service: "{record.query}"\n'
        "Write the search query that will make the engine rank the papers this researcher wants "
        "as high as possible."
    )


def _literature_short_user(record: TaskRecord) -> str:
    return f'Request: "{record.query}"\nWrite the search query: the words that name the topic.'


#: what an agent format adds to the user turn: the call syntax of the search tool (:mod:`verl_rec.agent.protocol`)
SEARCH_INSTRUCTIONS = (
    "Before answering you may search the catalog to see what a query retrieves. To search, write only "
    f"{tool_call_text('your query')} and stop; the engine replies with the top products (id | title). "
    "Refine your query with what you see, then give the final query."
)


#: the literature agent's instructions. No example call or answer: SmolLM2-135M copies an example's
#: words ("your query", "...") into its pre-filled call instead of the topic's (docs/agent.md)
LITERATURE_SEARCH_INSTRUCTIONS = "Search once for the words that name the topic; then write the search query."


def _bm25_agent_user(record: TaskRecord) -> str:
    return f"{_bm25_user(record)}\n{SEARCH_INSTRUCTIONS}"


def _literature_agent_user(record: TaskRecord) -> str:
    return f'Request: "{record.query}"\n{LITERATURE_SEARCH_INSTRUCTIONS}'


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
    "bag-of-words: it matches stemmed words and ignores word order, quotes and Boolean operators "
    "(AND, OR, NOT have no effect)."
)
_BM25_RARE_WORDS_SYSTEM = (
    "You write queries for a BM25 keyword search engine over a product catalog. The engine is "
    "bag-of-words: it matches stemmed words, ignores word order, quotes and Boolean operators "
    "(AND, OR, NOT have no effect), and favours rare words that appear in the wanted products."
)
_BM25_LITERATURE_SYSTEM = (
    "You write queries for a BM25 keyword search engine over the abstracts of scientific papers. "
    "The engine is bag-of-words: it matches stemmed words and ignores word order, quotes and "
    "Boolean operators (AND, OR, NOT have no effect)."
)
_BM25_LITERATURE_SHORT_SYSTEM = (
    "You write keyword queries for a BM25 search engine over scientific abstracts. "
    'Answer format: <think>\n</think>\n<answer>{"query": "..."}</answer>'
)
#: the literature agent's: no answer format (both turns are pre-filled), no example to copy
_BM25_LITERATURE_AGENT_SYSTEM = "You write keyword queries for a BM25 search engine over scientific abstracts."
#: the quickstart's pre-fill: an empty think, then the answer opened up to the query's first word
SHORT_ANSWER_PREFILL = '<think>\n</think>\n<answer>{"query": "'
#: a search agent's first turn, opened up to the query's first word (the Hermes call of :func:`tool_call_text`)
SEARCH_CALL_PREFILL = tool_call_text("QUERY").split("QUERY", 1)[0]
_DENSE_SYSTEM = (
    "You write queries for a neural (dense embedding) product search engine. It compares the "
    "meaning of your text with product descriptions, so fluent, specific descriptions work best."
)
_RERANK_SYSTEM = "You are a product search expert who orders candidate products by relevance to a query."

# -- the released Rec-R1 prompts, verbatim (src/dataset/*/inst/*/; see docs/fidelity.md) ------------
# The released prompts are raw strings with the Qwen ChatML markup written in; split into a
# system and a user message, Qwen2.5's chat template renders them back byte for byte.

_PAPER_SYSTEM = (
    "You are a helpful AI assistant. You first think about the reasoning process in the mind and "
    "then provide the user with the answer."
)
_PAPER_ANSWER = (
    "Show your work in <think> </think> tags. Your final response must be in JSON format within "
    "<answer> </answer> tags."
)
_PAPER_BOOLEAN = " The generated query should use Boolean operators (AND, OR) to structure your query logically."
_PAPER_EXAMPLE = ' For example,\n<answer>\n{\n    "query": xxx\n}\n</answer>.'
_PAPER_SPARSE_TASK = (
    "You are an expert in query generation. Given a query, your task is to create query terms to "
    "retrieve retrieve the most relevant products, ensuring they best meet customer needs.\n"
    "Below is the query:\n```{input}```\n"
)
_PAPER_ESCI_DENSE_TASK = (
    "You are an expert in generating queries for dense retrieval. Given a customer query, your task "
    "is to retain the original query while expanding it with additional semantically relevant "
    "information, retrieve the most relevant products, ensuring they best meet customer needs. If no "
    "useful expansion is needed, return the original query as is.\n"
    "Below is the query:\n```{input}```\n"
)
_PAPER_C4_DENSE_TASK = (
    "You are an expert in query rewriting for dense retrieval systems. Rewrite the following product "
    "search query as if you are a real customer writing a natural, authentic review after using the "
    "product. Maintain the meaning and details of the original query, but shift the tone to be more "
    "casual, emotional, and based on personal experience. Include specific comments about product "
    "performance that match the query's intent.\n"
    "# Below is the product search query:\n# ```{input}```\n"
)
_PAPER_SEQREC_TASK = (
    "You are an intelligent shopping assistant that helps predict what users may want to purchase "
    "next. Below is a list of items a user has purchased recently. Your task is to infer one or "
    "multiple kinds of products they may want to buy next, and generate relevant query terms that "
    "can be used to search for these potential products.\n"
    "Below is the user purchase history:\n```{input}```\n"
)
#: the released seqrec prompt shows the last 10 history items
PAPER_HISTORY_ITEMS = 10


def _paper_user(task_text: str, boolean: bool, input_of: Callable[[TaskRecord], str]) -> Callable[[TaskRecord], str]:
    """The user turn of a released prompt (the input goes in as is, like the released ``str.format``)."""
    tail = _PAPER_ANSWER + (_PAPER_BOOLEAN if boolean else "") + _PAPER_EXAMPLE

    def render(record: TaskRecord) -> str:
        return task_text.replace("{input}", input_of(record)) + tail

    return render


def _paper_history(record: TaskRecord) -> str:
    """``Item 1: <title>`` lines of the last 10 purchases, oldest first (``amazon_beauty.py``)."""
    shown = list(record.history)[-PAPER_HISTORY_ITEMS:]
    return "\n".join(f"Item {i}: {title}" for i, title in enumerate(shown, start=1)).strip()


def _query(record: TaskRecord) -> str:
    return record.query


def _paper(name: str, task: str, task_text: str, boolean: bool, input_of: Callable[[TaskRecord], str]) -> PromptFormat:
    return PromptFormat(name, task, _PAPER_SYSTEM, _paper_user(task_text, boolean, input_of), example='{"query": xxx}',
                        append_rules=False, assistant_prefill=PAPER_PREFILL, agent_loop=PREFILL_AGENT_LOOP)


FORMATS: dict[str, PromptFormat] = {
    f.name: f
    for f in (
        PromptFormat("bm25_query", "search", _BM25_SYSTEM, _bm25_user),
        PromptFormat("bm25_query_rare_words", "search", _BM25_RARE_WORDS_SYSTEM, _bm25_user),
        # a TREC collection's verbose requests (verl_rec.builders.trec_collection): scientific abstracts
        PromptFormat("bm25_literature", "search", _BM25_LITERATURE_SYSTEM, _literature_user),
        # the quickstart's: a short prompt, and the answer pre-filled up to the query (an untrained
        # small model then writes a query at once; the reward reads the output after the pre-fill)
        PromptFormat("bm25_literature_short", "search", _BM25_LITERATURE_SHORT_SYSTEM, _literature_short_user,
                     append_rules=False, assistant_prefill=SHORT_ANSWER_PREFILL, agent_loop=PREFILL_AGENT_LOOP),
        PromptFormat("bm25_agent", "search", _BM25_SYSTEM, _bm25_agent_user, agent_loop=SEARCH_AGENT_LOOP),
        # the quickstart's literature task as a search agent (bench.learn compares it with the rewrite):
        # the short request line, its first turn pre-filled inside a search call and its final turn
        # inside the answer, as bm25_literature_short's one turn is (without the pre-fills
        # SmolLM2-135M never writes a call)
        PromptFormat("bm25_literature_agent", "search", _BM25_LITERATURE_AGENT_SYSTEM, _literature_agent_user,
                     append_rules=False, agent_loop=SEARCH_AGENT_LOOP, search_prefill=SEARCH_CALL_PREFILL,
                     answer_prefill=SHORT_ANSWER_PREFILL),
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
        # ESCI sparse and Amazon-C4 sparse: the two released prompts are byte-identical
        _paper("paper_sparse", "search", _PAPER_SPARSE_TASK, True, _query),
        _paper("paper_esci_dense", "search", _PAPER_ESCI_DENSE_TASK, False, _query),
        _paper("paper_c4_dense", "search", _PAPER_C4_DENSE_TASK, False, _query),
        _paper("paper_seqrec", "seqrec", _PAPER_SEQREC_TASK, True, _paper_history),
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


@lru_cache(maxsize=256)  # the reward asks for every sample; formats and specs are frozen
def _spec_for(fmt: PromptFormat, think_prefilled: bool | None, max_query_words: int | None,
              format_rule: str) -> FormatSpec:
    spec = fmt.spec
    prefilled = spec.think_prefilled if think_prefilled is None else bool(think_prefilled)
    return replace(spec, think_prefilled=prefilled, max_query_words=max_query_words, format_rule=format_rule)


def format_spec(name: str, think_prefilled: bool | None = None, max_query_words: int | None = None,
                format_rule: str = "released") -> FormatSpec:
    """:meth:`PromptFormat.spec_for` of the format called ``name`` (for callers that hold a name)."""
    return get_format(name).spec_for(think_prefilled, max_query_words, format_rule)
