"""The search tool's settings: plain data from the tool config yaml, checked at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SearchToolSettings:
    """What one ``search(query)`` call returns and which queries it refuses.

    ``result_tokens`` bounds the tokens of one tool response (header, result lines and the
    line saying how many searches are left): results that do not fit are left out, the last
    one that fits may lose words. The number of calls per episode is veRL's
    ``multi_turn.max_user_turns``, not a setting here. ``max_consecutive_failures``: after that
    many calls in a row that the retrieval service failed (in one agent-loop worker), the run
    stops with an error instead of training on "the search engine failed" answers.
    """

    top_k: int = 10
    result_tokens: int = 256
    max_query_words: int = 64
    max_query_chars: int = 512
    max_consecutive_failures: int = 50
    #: the most new tokens the policy writes in one turn (0: no cap but the episode's response_length)
    turn_tokens: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lowest = 0 if f.name == "turn_tokens" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                raise ValueError(f"search tool setting {f.name!r} must be an integer >= {lowest}, got {value!r}")
        if self.result_tokens < 16:
            raise ValueError(f"search tool setting 'result_tokens' must be at least 16, got {self.result_tokens}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "the search tool config") -> SearchToolSettings:
        """Settings from a mapping; an unknown key fails naming it and the known ones."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown key(s) {unknown} in {where}; known keys are {sorted(known)}")
        return cls(**values)
