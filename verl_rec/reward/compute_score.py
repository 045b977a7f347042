"""veRL-compatible ``compute_score`` for ``reward.custom_reward_function``.

``compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)``
returns ``{"score": float, <fixed numeric extra keys>}`` (see :mod:`verl_rec.reward.scoring`).
It scores ONE sample with a retriever held by this process; the shared, micro-batched
retrieval service is the job of verl-rec's reward manager. ``reward_kwargs`` (all optional):

* format: ``answer_key`` (``query`` | ``reranked_items``), ``require_think``,
  ``think_prefilled``, ``max_query_words``
* reward: ``metric`` (``ndcg@1000``), ``eval_metrics`` (list), ``format_penalty``, ``bonus``,
  ``retrieval_error_score``
* retriever (query tasks): ``retriever`` = ``{"backend": "bm25s"|"lucene", "index_path": ...,
  <backend options>}``, or a ready :class:`~verl_rec.retrieval.base.Retriever` object.

For ``reranked_items`` the model's list IS the ranking (ids such as ``Item_3``) and the
ground truth names the relevant items; no retriever is used.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping, Optional, Sequence

from verl_rec.retrieval.base import Retriever
from verl_rec.retrieval.registry import open_retriever
from verl_rec.reward.parsing import FormatSpec, ParsedOutput, parse_output
from verl_rec.reward.scoring import RewardSpec, parse_ground_truth, score_ranking

logger = logging.getLogger(__name__)

_FORMAT_KEYS = ("answer_key", "require_think", "think_prefilled", "max_query_words")
_REWARD_KEYS = ("metric", "eval_metrics", "format_penalty", "bonus", "retrieval_error_score")
_RETRIEVERS: dict[str, Retriever] = {}


def split_kwargs(kwargs: Mapping[str, Any]) -> tuple[FormatSpec, RewardSpec, Any]:
    """Turn flat reward kwargs into specs; an unknown key fails and names the known ones."""
    known = set(_FORMAT_KEYS) | set(_REWARD_KEYS) | {"retriever"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise KeyError(f"unknown reward kwargs {unknown}; known keys are {sorted(known)}")
    fmt = FormatSpec(**{k: kwargs[k] for k in _FORMAT_KEYS if k in kwargs})
    reward = {k: kwargs[k] for k in _REWARD_KEYS if k in kwargs}
    if "eval_metrics" in reward:
        reward["eval_metrics"] = tuple(reward["eval_metrics"])
    return fmt, RewardSpec(**reward), kwargs.get("retriever")


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


def retrieve_ranking(parsed: ParsedOutput, fmt: FormatSpec, retriever_config: Any, depth: int) -> Optional[Sequence[str]]:
    """The ranking for a well-formed answer, or ``None`` when retrieval failed (logged)."""
    if fmt.answer_key != "query":
        return list(parsed.answer)
    try:
        return _cached_retriever(retriever_config).search([parsed.answer], k=depth)[0].ids
    except Exception:  # the trainer must go on; the error is counted in `retrieval_error`
        logger.exception("verl-rec: retrieval failed for query %r", str(parsed.answer)[:200])
        return None


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Optional[Mapping[str, Any]] = None,
    **reward_kwargs: Any,
) -> dict[str, float]:
    """Score one rollout by the Rec-R1 contract; never raises on model output."""
    fmt, spec, retriever_config = split_kwargs(reward_kwargs)
    qrels = parse_ground_truth(ground_truth)
    parsed = parse_output(solution_str, fmt)
    ranking = retrieve_ranking(parsed, fmt, retriever_config, spec.depth) if parsed.ok else None
    result = score_ranking(parsed, ranking, qrels, spec)
    return {"score": result.score, **result.extra}
