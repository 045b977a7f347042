"""veRL-compatible ``compute_score`` for ``reward.custom_reward_function``.

``compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)``
returns ``{"score": float, <fixed numeric extra keys>}`` (:mod:`verl_rec.reward.contract`). It
scores ONE sample with a retriever held by this process, through the same scorer as the
reward manager (:mod:`verl_rec.reward.scorer`); the shared, micro-batched retrieval service is
the reward manager's job. ``reward_kwargs`` (all optional): the format keys
(:data:`~verl_rec.reward.reward_kwargs.FORMAT_KEYS`), the reward keys
(:data:`~verl_rec.reward.reward_kwargs.REWARD_KEYS`) and, for query tasks, ``retriever`` =
``{"backend": ..., "index_path": ..., <backend options>}`` or a ready
:class:`~verl_rec.retrieval.base.Retriever`. For ``reranked_items`` the model's list IS the
ranking and no retriever is used; when ``extra_info`` carries the prompt's ``candidate_ids``,
the list must be a permutation of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

from verl_rec.qrels import parse_qrels
from verl_rec.retrieval.base import Retriever
from verl_rec.retrieval.registry import open_retriever
from verl_rec.reward.contract import RewardSpec
from verl_rec.reward.reward_kwargs import FORMAT_KEYS, REWARD_KEYS, check_keys, reward_spec
from verl_rec.reward.scorer import prepare, score_with_search
from verl_rec.tasks.formats import FormatSpec

_RETRIEVERS: dict[str, Retriever] = {}


def split_kwargs(kwargs: Mapping[str, Any]) -> tuple[FormatSpec, RewardSpec, Any]:
    """Turn flat reward kwargs into specs; an unknown key fails and names the known ones."""
    check_keys(kwargs, (*FORMAT_KEYS, *REWARD_KEYS, "retriever"), "compute_score's reward kwargs")
    fmt = FormatSpec(**{k: kwargs[k] for k in FORMAT_KEYS if k in kwargs})
    return fmt, reward_spec(kwargs), kwargs.get("retriever")


def _cached_retriever(config: Any) -> Retriever:
    if isinstance(config, Retriever):
        return config
    if not isinstance(config, Mapping) or "backend" not in config or "index_path" not in config:
        raise KeyError("reward kwarg 'retriever' must be {'backend': ..., 'index_path': ..., <options>}")
    key = json.dumps(dict(config), sort_keys=True, default=str)
    if key not in _RETRIEVERS:
        options = dict(config)
        retriever = open_retriever(options.pop("backend"), options.pop("index_path"), **options)
        retriever.warmup()
        _RETRIEVERS[key] = retriever
    return _RETRIEVERS[key]


def _search(config: Any, queries: list[str], k: int) -> list:
    """Search with the configured retriever, opened on first use: inside the scorer's error
    handling, so that a retriever that cannot open is a counted retrieval error."""
    return _cached_retriever(config).search(queries, k)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **reward_kwargs: Any,
) -> dict[str, float]:
    """Score one rollout by the Rec-R1 contract; never raises on model output."""
    fmt, spec, retriever_config = split_kwargs(reward_kwargs)
    candidates = (extra_info or {}).get("candidate_ids") if isinstance(extra_info, Mapping) else None
    pending = prepare(solution_str, parse_qrels(ground_truth), fmt, spec, None if candidates is None else list(candidates))
    result = score_with_search([pending], partial(_search, retriever_config))[0]
    return {"score": result.score, **result.extra}
