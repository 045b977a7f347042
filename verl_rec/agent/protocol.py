"""The search tool's protocol: call syntax, argument checks, error messages, result text.

One module for the veRL tool (:mod:`verl_rec.integration.search_tool`) and the evaluation
(:mod:`verl_rec.evaluation.agent`), so that a checkpoint is evaluated against exactly the
tool it was trained with.

A call is written in the Hermes syntax veRL's ``multi_turn.format: hermes`` parser reads::

    <tool_call>
    {"name": "search", "arguments": {"query": "wireless controller black"}}
    </tool_call>

and answered with one compact text block, cut to the token budget of
:class:`~verl_rec.agent.tool_settings.SearchToolSettings`::

    [search 1 of 3] results (id | title):
    1. B000000123 | Acme Zenith Pro Wireless Controller Black
    2. ...
    (2 searches left)

A call that cannot be served is answered with a one-line error naming what to fix (see
:class:`CallError`); it still counts as one of the episode's calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import regex

from verl_rec.agent.tool_settings import SearchToolSettings

TOOL_NAME = "search"

#: the OpenAI function schema veRL hands the chat template (``tools=``) and the tool parser
SEARCH_TOOL_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Search the catalog with a keyword query; returns the ids and titles of the top results.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "the keyword query to run"}},
            "required": ["query"],
        },
    },
}

_TOOL_CALL = regex.compile(r"<tool_call>(.*?)</tool_call>", regex.DOTALL)
_QUOTE_CHARS = 60  # how much of a bad argument an error message repeats

#: counts the tokens of a text (the policy's tokenizer); the fallback guesses 4 characters per token
TokenCounter = Callable[[str], int]


def approximate_tokens(text: str) -> int:
    return len(text) // 4 + 1


class CallError(str, Enum):
    """Why a call was not answered with results. Each value is a stable name (logs, tests)."""

    BAD_ARGUMENTS = "bad_arguments"
    EMPTY_QUERY = "empty_query"
    QUERY_TOO_LONG = "query_too_long"
    LIMIT_REACHED = "limit_reached"
    RETRIEVAL_FAILED = "retrieval_failed"


class SearchCallError(Exception):
    def __init__(self, kind: CallError, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _quote(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "..."


def read_query(arguments: Any, settings: SearchToolSettings) -> str:
    """The query of a call's arguments, whitespace collapsed; :class:`SearchCallError` otherwise."""
    usage = 'call search with {"query": "<keywords>"}'
    if not isinstance(arguments, dict):
        raise SearchCallError(CallError.BAD_ARGUMENTS, f"the arguments must be a JSON object, got {_quote(arguments)}; {usage}")
    extra = sorted(str(k) for k in arguments if k != "query")
    if "query" not in arguments or extra:
        given = _quote(sorted(map(str, arguments)))
        raise SearchCallError(CallError.BAD_ARGUMENTS, f"search takes exactly one argument, query; got {given}; {usage}")
    query = arguments["query"]
    if not isinstance(query, str):
        raise SearchCallError(CallError.BAD_ARGUMENTS, f"the query must be a string, got {_quote(query)}; {usage}")
    words = query.split()
    if not words:
        raise SearchCallError(CallError.EMPTY_QUERY, f"the query is empty; {usage}")
    if len(words) > settings.max_query_words:
        raise SearchCallError(CallError.QUERY_TOO_LONG,
                              f"the query has {len(words)} words, the limit is {settings.max_query_words}; shorten it")
    query = " ".join(words)
    if len(query) > settings.max_query_chars:
        raise SearchCallError(CallError.QUERY_TOO_LONG,
                              f"the query has {len(query)} characters, the limit is {settings.max_query_chars}; shorten it")
    return query


def check_call_budget(call_number: int, max_calls: int | None) -> None:
    """Refuse call ``call_number`` (1-based) of an episode allowed ``max_calls`` (None: no limit)."""
    if max_calls is not None and call_number > max_calls:
        raise SearchCallError(CallError.LIMIT_REACHED,
                              f"all {max_calls} searches are used; write your final answer now")


def _label(call_number: int, max_calls: int | None) -> str:
    return f"[search {call_number}" + (f" of {max_calls}]" if max_calls is not None else "]")


def remaining_line(call_number: int, max_calls: int | None) -> str:
    """How many calls are left after call ``call_number``; empty with no limit."""
    if max_calls is None:
        return ""
    left = max_calls - call_number
    if left <= 0:
        return "(no searches left: write your final answer now)"
    return f"({left} search{'es' if left > 1 else ''} left)"


def render_error(error: SearchCallError, call_number: int, max_calls: int | None) -> str:
    """The tool response of a refused or failed call."""
    if error.kind is CallError.LIMIT_REACHED:
        return f"{_label(call_number, max_calls)} error ({error.kind.value}): {error.message}"
    return " ".join(p for p in (f"{_label(call_number, max_calls)} error ({error.kind.value}): {error.message}",
                                remaining_line(call_number, max_calls)) if p)


def render_results(hits: Sequence[tuple[str, str]], call_number: int, max_calls: int | None,
                   settings: SearchToolSettings, count_tokens: TokenCounter = approximate_tokens) -> tuple[str, int]:
    """The tool response of a served call and how many results it shows.

    Results go in rank order while the whole text fits ``settings.result_tokens``; the first
    that does not fit is shortened word by word (if its id fits), and the rest are left out.
    """
    footer = remaining_line(call_number, max_calls)
    if not hits:
        return "\n".join(p for p in (f"{_label(call_number, max_calls)} no results", footer) if p), 0
    header = f"{_label(call_number, max_calls)} results (id | title):"

    def text(lines: list[str]) -> str:
        return "\n".join([header, *lines, *([footer] if footer else [])])

    budget = settings.result_tokens
    lines: list[str] = []
    for rank, (doc_id, title) in enumerate(hits, start=1):
        line = f"{rank}. {doc_id} | {title}".rstrip(" |")
        if count_tokens(text([*lines, line])) <= budget:
            lines.append(line)
            continue
        words = title.split()
        low, high = 0, len(words) - 1  # the most title words that still fit (binary search)
        while low < high:
            mid = (low + high + 1) // 2
            if count_tokens(text([*lines, f"{rank}. {doc_id} | {' '.join(words[:mid])}..."])) <= budget:
                low = mid
            else:
                high = mid - 1
        candidate = f"{rank}. {doc_id} | {' '.join(words[:low])}..." if low else f"{rank}. {doc_id}"
        if count_tokens(text([*lines, candidate])) <= budget:
            lines.append(candidate)
        break
    return text(lines), len(lines)


def tool_call_text(query: str) -> str:
    """A well-formed call of ``search(query)`` in the Hermes syntax."""
    call = json.dumps({"name": TOOL_NAME, "arguments": {"query": query}}, ensure_ascii=False)
    return f"<tool_call>\n{call}\n</tool_call>"


def close_prefilled_call(text: str) -> str:
    """A turn that starts inside a pre-filled call, read up to the end of the call's JSON object.

    A small model continues ``<tool_call>\n{"name": "search", "arguments": {"query": "`` with its
    query and ``"}}``, then rarely writes ``</tool_call>``: a turn whose JSON object completes is
    returned as that one well-formed call (what follows it is dropped); any other turn as it is.
    """
    head, opened, rest = text.partition("<tool_call>")
    if not opened or "</tool_call>" in rest:
        return text
    try:
        call, _ = json.JSONDecoder().raw_decode(rest.lstrip())
    except ValueError:
        return text
    if not isinstance(call, dict):
        return text
    return f"{head}<tool_call>\n{json.dumps(call, ensure_ascii=False)}\n</tool_call>"


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: Any


def parse_tool_calls(text: str) -> tuple[str, list[ParsedCall]]:
    """The calls of one assistant turn and the text around them, as veRL's Hermes parser reads
    them: each ``<tool_call>`` block must be a JSON object with ``name`` and ``arguments``, and a
    block that is not is dropped (a turn whose blocks are all dropped is a final turn)."""
    if "<tool_call>" not in text or "</tool_call>" not in text:
        return text, []
    calls = []
    for body in _TOOL_CALL.findall(text):
        try:
            obj = json.loads(body)
            name, arguments = obj["name"], obj["arguments"]
        except Exception:  # veRL logs and drops a block it cannot decode
            continue
        if isinstance(name, str):  # veRL's FunctionCall refuses a name that is not a string
            calls.append(ParsedCall(name=name, arguments=arguments))
    return _TOOL_CALL.sub("", text), calls
