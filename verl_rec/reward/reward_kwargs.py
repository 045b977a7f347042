"""The reward's settings keys, listed once, and a recipe's ``reward.reward_kwargs`` block.

Plain data so that it can be checked without veRL: a misspelt key fails at start-up with
the list of known keys, never silently at step 300. The keys are the fields of the two specs
they fill, so a new field is a new key everywhere (the recipe block and ``compute_score``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from verl_rec.retrieval.service.config import ServiceConfig
from verl_rec.reward.contract import RewardSpec
from verl_rec.tasks.formats import FormatSpec, PromptFormat

#: how a ranking becomes a reward (:class:`RewardSpec`)
REWARD_KEYS = tuple(f.name for f in fields(RewardSpec))
#: what a well-formed output is (:class:`FormatSpec`)
FORMAT_KEYS = tuple(f.name for f in fields(FormatSpec))
#: the format keys a recipe sets; the answer key and the think block come from the prompt format
RECIPE_FORMAT_KEYS = ("max_query_words", "think_prefilled", "format_rule")


def check_keys(values: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Fail on a key that is not ``known``, naming it and the known ones."""
    known = set(known)
    unknown = sorted(set(values) - known)
    if unknown:
        raise KeyError(f"unknown key(s) {unknown} in {where}; known keys are {sorted(known)}")


def reward_spec(values: Mapping[str, Any]) -> RewardSpec:
    """The :class:`RewardSpec` of the reward keys in ``values``; a key unset or ``None`` keeps its default."""
    return RewardSpec(**{k: values[k] for k in REWARD_KEYS if values.get(k) is not None})


@dataclass(frozen=True)
class RewardSettings:
    """A recipe's reward settings: the reward, the retrieval service, and the format's options.

    ``think_prefilled``: ``None`` (the default) reads it off each rollout's prompt in the
    reward manager (did the prompt end with an opened ``<think>``?), else off the prompt
    format; ``True``/``False`` force it. ``format_rule``: ``released`` | ``strict``
    (:class:`~verl_rec.tasks.formats.FormatSpec`).
    """

    reward: RewardSpec
    retrieval: ServiceConfig | None
    max_query_words: int | None = None
    think_prefilled: bool | None = None
    format_rule: str = "released"
    search_cost: float = 0.0  # agent episodes: subtracted per search-tool call from a well-formed answer's score

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RewardSettings:
        values = dict(values or {})
        check_keys(values, (*REWARD_KEYS, *RECIPE_FORMAT_KEYS, "retrieval", "search_cost"), "reward.reward_kwargs")
        retrieval = values.get("retrieval")
        prefilled = values.get("think_prefilled")
        rule = values.get("format_rule") or "released"
        FormatSpec(format_rule=rule)  # an unknown rule fails here, at start-up
        search_cost = float(values.get("search_cost") or 0.0)
        if search_cost < 0:
            raise ValueError(f"reward.reward_kwargs.search_cost must be >= 0 (a cost per search), got {search_cost}")
        return cls(
            reward=reward_spec(values),
            retrieval=ServiceConfig.from_mapping(retrieval) if retrieval else None,
            max_query_words=values.get("max_query_words"),
            think_prefilled=None if prefilled is None else bool(prefilled),
            format_rule=rule,
            search_cost=search_cost,
        )

    def format_spec(self, fmt: PromptFormat, think_prefilled: bool | None = None) -> FormatSpec:
        """What outputs of ``fmt`` must look like under these settings; ``think_prefilled`` is
        what this rollout's prompt did (a recipe's explicit setting wins)."""
        prefilled = self.think_prefilled if self.think_prefilled is not None else think_prefilled
        return fmt.spec_for(prefilled, self.max_query_words, self.format_rule)
