"""verl-rec's reward settings, read from the recipe's ``reward.reward_kwargs`` block.

Plain data so that it can be checked without veRL: a misspelt key fails at start-up with
the list of known keys, never silently at step 300.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from verl_rec.reward.scoring import RewardSpec
from verl_rec.retrieval.service.config import ServiceConfig

_REWARD_KEYS = ("metric", "eval_metrics", "format_penalty", "bonus", "retrieval_error_score")
_FORMAT_KEYS = ("max_query_words", "think_prefilled")


@dataclass(frozen=True)
class RewardSettings:
    reward: RewardSpec
    retrieval: Optional[ServiceConfig]
    max_query_words: Optional[int] = None
    think_prefilled: bool = False

    @classmethod
    def from_mapping(cls, values: Optional[Mapping[str, Any]]) -> "RewardSettings":
        values = dict(values or {})
        known = set(_REWARD_KEYS) | set(_FORMAT_KEYS) | {"retrieval"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown key(s) {unknown} in reward.reward_kwargs; known keys are {sorted(known)}")
        reward = {k: values[k] for k in _REWARD_KEYS if values.get(k) is not None}
        if "eval_metrics" in reward:
            reward["eval_metrics"] = tuple(reward["eval_metrics"])
        retrieval = values.get("retrieval")
        return cls(
            reward=RewardSpec(**reward),
            retrieval=ServiceConfig.from_mapping(retrieval) if retrieval else None,
            max_query_words=values.get("max_query_words"),
            think_prefilled=bool(values.get("think_prefilled", False)),
        )
