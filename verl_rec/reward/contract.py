"""The Rec-R1 reward contract, as pure functions.

==========================================  =============================
outcome                                     score (defaults)
==========================================  =============================
malformed output (any :class:`FormatError`)  ``format_penalty`` = -2
well formed, retrieval failed               ``retrieval_error_score`` = 0
well formed, train metric m == 0            0
well formed, train metric m > 0             ``bonus + m`` = 0.1 + m
==========================================  =============================

So with the defaults every score lies in ``{-2} U {0} U (0.1, 1.1]``. A retrieval error is
never hidden in that 0: it is counted in its own ``retrieval_error`` key (and logged by the
caller). Every outcome carries the SAME numeric extra keys (veRL requires it), 0 when not
computed:

* ``format_ok``, ``retrieval_error``;
* ``query_words``: words of the query (items of a re-ranked list);
* ``query_repeated_words`` and ``query_repeat_share``: how many of the query's terms
  (lower-cased runs of word characters) repeat an earlier term, and their share of all its terms. Rec-R1
  policies drift to ~180-word keyword lists with repeated terms (bag-of-words BM25 rewards
  term frequency): these keys make that drift a curve;
* one key per metric spec (``"ndcg@1000"``, ...).

Optional shaping, off by default (both 0): a well-formed, retrieved answer loses
``repeat_penalty * query_repeat_share`` and ``length_penalty`` per query word beyond
``length_penalty_after`` words. A format failure or a retrieval error is never shaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from verl_rec.metrics import evaluate_positions, first_positions, parse_metric
from verl_rec.reward.parsing import ParsedOutput


@dataclass(frozen=True)
class RewardSpec:
    """How a ranking becomes a reward. ``metric`` is the training signal."""

    metric: str = "ndcg@1000"
    eval_metrics: tuple[str, ...] = ()
    format_penalty: float = -2.0
    bonus: float = 0.1
    retrieval_error_score: float = 0.0
    repeat_penalty: float = 0.0
    length_penalty: float = 0.0
    length_penalty_after: int = 0

    def __post_init__(self) -> None:
        for spec in (self.metric, *self.eval_metrics):
            parse_metric(spec)  # fails early on a misspelt metric
        for name in ("repeat_penalty", "length_penalty", "length_penalty_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (a penalty is subtracted), got {getattr(self, name)}")
        object.__setattr__(self, "eval_metrics", tuple(self.eval_metrics))

    @cached_property  # read for every sample; the spec is frozen
    def metric_keys(self) -> tuple[str, ...]:
        """Metric specs logged for every sample: the train metric first, no duplicates."""
        return tuple(dict.fromkeys((self.metric, *self.eval_metrics)))

    @cached_property
    def depth(self) -> int:
        """The deepest cutoff needed: how many hits to ask the retriever for."""
        return max(parse_metric(spec)[1] for spec in self.metric_keys)


@dataclass(frozen=True)
class RewardResult:
    score: float
    extra: dict[str, float] = field(default_factory=dict)


def reward_from_metric(value: float, spec: RewardSpec) -> float:
    """0 for a zero metric, ``bonus + value`` otherwise (the contract's well-formed rows)."""
    return spec.bonus + value if value > 0 else 0.0


_TERM = re.compile(r"\w+")


@dataclass(frozen=True)
class AnswerShape:
    """Length and repetition of an answer: a query's words and terms, or a list's items."""

    words: int = 0
    repeated: int = 0
    terms: int = 0

    @property
    def repeat_share(self) -> float:
        return self.repeated / self.terms if self.terms else 0.0


def answer_shape(answer: Any) -> AnswerShape:
    """Words of a query string (and its repeated terms), or items of a list answer (and its repeats)."""
    if isinstance(answer, str):
        terms = _TERM.findall(answer.lower())
        return AnswerShape(len(answer.split()), len(terms) - len(set(terms)), len(terms))
    if isinstance(answer, (list, tuple)):
        return AnswerShape(len(answer), len(answer) - len(set(answer)), len(answer))
    return AnswerShape()


def shaping_penalty(shape: AnswerShape, spec: RewardSpec) -> float:
    """What the optional repetition and length penalties take off a well-formed answer."""
    penalty = spec.repeat_penalty * shape.repeat_share
    if spec.length_penalty:
        penalty += spec.length_penalty * max(0, shape.words - spec.length_penalty_after)
    return penalty


def _extras(spec: RewardSpec, metrics: Mapping[str, float], format_ok: bool, error: bool,
            shape: AnswerShape = AnswerShape()) -> dict[str, float]:
    extra = {"format_ok": float(format_ok), "retrieval_error": float(error), "query_words": float(shape.words),
             "query_repeated_words": float(shape.repeated), "query_repeat_share": shape.repeat_share}
    extra.update({key: float(metrics.get(key, 0.0)) for key in spec.metric_keys})
    return extra


def answer_length(answer: Any) -> int:
    """Words of a query string, or items of a list answer."""
    return answer_shape(answer).words


def score_parsed(
    parsed: ParsedOutput,
    found: Mapping[str, int] | None,
    qrels: Mapping[str, float],
    spec: RewardSpec,
) -> RewardResult:
    """Score one output from the positions of its targets in the ranking.

    ``found`` is :func:`~verl_rec.metrics.first_positions` of the targets in a ranking of
    depth ``spec.depth`` (or the service's answer); ``None`` for a well-formed output means
    retrieval failed.
    """
    if not parsed.ok:
        return RewardResult(spec.format_penalty, _extras(spec, {}, False, False))
    shape = answer_shape(parsed.answer)
    if found is None:
        return RewardResult(spec.retrieval_error_score, _extras(spec, {}, True, True, shape))
    metrics = evaluate_positions(found, qrels, spec.metric_keys)
    value = metrics[spec.metric]
    if not math.isfinite(value):
        raise ValueError(f"metric {spec.metric} is not finite ({value}); qrels={dict(qrels)!r}")
    score = reward_from_metric(value, spec) - shaping_penalty(shape, spec)
    return RewardResult(score, _extras(spec, metrics, True, False, shape))


def score_ranking(
    parsed: ParsedOutput, ranking: Sequence[str] | None, qrels: Mapping[str, float], spec: RewardSpec
) -> RewardResult:
    """:func:`score_parsed` from a full ranking (the slow path, used without the service)."""
    found = None if ranking is None else first_positions(ranking, qrels, spec.depth)
    return score_parsed(parsed, found, qrels, spec)
