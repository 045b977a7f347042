"""What one agent episode did, in the plain form veRL's agent loop passes to the reward.

The search tool appends one :class:`SearchCall` per call to the episode's ``extra_fields``
(under :data:`CALLS_KEY`); at the end the agent loop adds the :class:`Episode` summary (under
:data:`EPISODE_KEY`): the calls, the text of the final assistant turn (the only text the reward
reads) and how many response tokens the policy wrote versus how many it was shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ``extra_fields`` key the search tool appends its calls to (a list of :meth:`SearchCall.to_dict`)
CALLS_KEY = "verl_rec_search_calls"
#: ``extra_fields`` key of the episode summary (:meth:`Episode.to_dict`)
EPISODE_KEY = "verl_rec_episode"
#: the ``SearchCall.error`` of a call the retrieval service failed (``protocol.CallError.RETRIEVAL_FAILED``)
RETRIEVAL_FAILED = "retrieval_failed"


@dataclass(frozen=True)
class SearchCall:
    """One call: the query searched (None when refused) and why it showed no results."""

    query: str | None
    error: str = ""  # a CallError value; "" when results were shown
    results: int = 0  # results shown (after the token budget)

    @property
    def ok(self) -> bool:
        return not self.error

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "error": self.error, "results": self.results}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchCall:
        query = values.get("query")
        return cls(query=None if query is None else str(query), error=str(values.get("error") or ""),
                   results=int(values.get("results") or 0))


@dataclass(frozen=True)
class Episode:
    """The final assistant turn and the calls before it."""

    final_text: str
    calls: tuple[SearchCall, ...] = field(default_factory=tuple)
    policy_tokens: int = 0  # response tokens the policy generated (response_mask 1)
    context_tokens: int = 0  # response tokens it was shown: tool outputs, chat-template glue (response_mask 0)

    @property
    def searches(self) -> int:
        """Calls answered with results."""
        return sum(1 for c in self.calls if c.ok)

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if not c.ok)

    @property
    def engine_failures(self) -> int:
        """Calls the retrieval service failed (not the policy's fault)."""
        return sum(1 for c in self.calls if c.error == RETRIEVAL_FAILED)

    @property
    def first_query(self) -> str | None:
        """The first query that was searched (its results shown)."""
        return next((c.query for c in self.calls if c.ok), None)

    def to_dict(self) -> dict[str, Any]:
        return {"final_text": self.final_text, "calls": [c.to_dict() for c in self.calls],
                "policy_tokens": self.policy_tokens, "context_tokens": self.context_tokens}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Episode:
        return cls(final_text=str(values.get("final_text") or ""),
                   calls=tuple(SearchCall.from_dict(c) for c in (values.get("calls") or ())),
                   policy_tokens=int(values.get("policy_tokens") or 0),
                   context_tokens=int(values.get("context_tokens") or 0))


def episode_from(fields: Mapping[str, Any] | None) -> Episode | None:
    """The episode recorded in an agent loop's ``extra_fields`` (None: not an agent episode)."""
    values = (fields or {}).get(EPISODE_KEY)
    return Episode.from_dict(values) if isinstance(values, Mapping) else None


def last_turn_span(response_mask: Sequence[int]) -> tuple[int, int]:
    """``[start, end)`` of the last run of policy tokens (mask 1) in a response: its final turn.

    veRL's agent loop marks every generated token 1 and every token it inserted (tool output,
    the chat template's turn markers) 0, so turns are the maximal runs of 1s. ``(0, 0)`` when
    the policy generated nothing.
    """
    end = len(response_mask)
    while end > 0 and not response_mask[end - 1]:
        end -= 1
    start = end
    while start > 0 and response_mask[start - 1]:
        start -= 1
    return start, end
