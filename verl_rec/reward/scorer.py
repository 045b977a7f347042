"""The one scorer: model output -> parsed answer -> target positions -> Rec-R1 score and logged keys.

Every path that scores an output runs these steps (the reward manager, ``compute_score``,
``verl_rec.evaluate``, the benchmark), on ground truth already parsed at its edge:

1. :func:`prepare` (pure): check the output against its :class:`FormatSpec` and say what
   retrieval it needs (:class:`Pending`): the query of a well-formed query answer; nothing for
   a malformed output or a re-ranked list (the list IS the ranking).
2. The query's target positions: :func:`score_with_service` awaits ONE sample's from the
   node's retrieval service (calls made in one event-loop tick leave as one Ray call, so
   nothing may yield before the client is called); :func:`score_with_search` scores MANY
   with a search function in this process, one call per batch of distinct queries.
3. :func:`finish` (pure): the positions -> :class:`RewardResult` (score + fixed logged keys).

A failed retrieval scores ``retrieval_error_score`` and is counted in ``retrieval_error`` so
that training goes on; an evaluation asks for it to raise instead (a failed search reported
as a miss would lower the table silently).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from verl_rec.metrics import first_positions
from verl_rec.qrels import parse_qrels
from verl_rec.retrieval.service.client import RetrievalClient
from verl_rec.reward.contract import RewardResult, RewardSpec, score_parsed, score_ranking
from verl_rec.reward.parsing import ParsedOutput, parse_output
from verl_rec.reward.reward_kwargs import RewardSettings
from verl_rec.tasks.formats import DEFAULT_FORMAT, FormatSpec, PromptFormat, get_format

logger = logging.getLogger(__name__)

#: ``Retriever.search``: queries and a depth in, per query an object with the ranked ``ids``
Search = Callable[[list[str], int], Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Pending:
    """One output, checked and waiting for the target positions of its query."""

    parsed: ParsedOutput
    qrels: dict[str, float]
    spec: RewardSpec
    query: str | None = None  # what to retrieve; None when the output needs no retrieval
    found: dict[str, int] | None = None  # positions known without retrieval (a re-ranked list)


def prepare_answer(parsed: ParsedOutput, qrels: dict[str, float], fmt: FormatSpec, spec: RewardSpec) -> Pending:
    """:func:`prepare` for an answer already parsed (e.g. an evaluation's raw-query baseline)."""
    if not parsed.ok:
        return Pending(parsed, qrels, spec)
    if fmt.answer_key == "query":
        return Pending(parsed, qrels, spec, query=parsed.answer)
    return Pending(parsed, qrels, spec, found=first_positions(parsed.answer, qrels, spec.depth))


def prepare(text: Any, qrels: dict[str, float], fmt: FormatSpec, spec: RewardSpec,
            candidates: Collection[str] | None = None) -> Pending:
    """Check ``text`` against ``fmt``; never raises on model output. ``qrels``: the parsed ground
    truth (:func:`verl_rec.qrels.parse_qrels`). ``candidates``: the prompt's item ids, which a
    re-ranked list must be a permutation of."""
    return prepare_answer(parse_output(text, fmt, candidates), qrels, fmt, spec)


def finish(pending: Pending, found: Mapping[str, int] | None = None) -> RewardResult:
    """The result from the target positions of the output's query (``None``: retrieval failed);
    an output that needed no retrieval ignores ``found``."""
    if pending.query is None:
        found = pending.found
    return score_parsed(pending.parsed, found, pending.qrels, pending.spec)


class PositionService(Protocol):
    """Where one query's target positions come from, asynchronously (:class:`RetrievalClient`)."""

    async def target_positions(self, query: str, k: int, targets: Sequence[str]) -> dict[str, int]: ...


async def score_with_service(pending: Pending, service: PositionService) -> RewardResult:
    """Score one prepared output, asking ``service`` for its query's target positions."""
    if pending.query is None:
        return finish(pending)
    try:
        found = await service.target_positions(pending.query, pending.spec.depth, list(pending.qrels))
    except Exception:  # the trainer must go on; the error is counted in `retrieval_error`
        logger.exception("verl-rec: retrieval failed for query %r", pending.query[:200])
        found = None
    return finish(pending, found)


def _batches(items: list[str], size: int, progress: bool) -> Iterator[list[str]]:
    starts = range(0, len(items), size)
    if progress and len(items) > size:
        from tqdm import tqdm

        starts = tqdm(starts, desc="retrieve", unit="batch", file=sys.stderr, mininterval=2)
    for start in starts:
        yield items[start:start + size]


def _ranking_or_none(hits: Any) -> list[str] | None:
    """The ranked ids, or None when the engine rejected the query (``SearchHits.error``)."""
    if getattr(hits, "error", None):
        logger.warning("verl-rec: the engine rejected a query: %s", hits.error)
        return None
    return list(hits.ids)


def score_with_search(pendings: Sequence[Pending], search: Search, *, batch_size: int = 256,
                      count_errors: bool = True, progress: bool = False) -> list[RewardResult]:
    """Score many prepared outputs with ``search`` in this process: one call per batch of the
    distinct queries, to the deepest cutoff any of them needs; each output's targets are then
    looked up in its query's ranking. A query the engine rejected is a retrieval error.
    ``count_errors=False`` lets a failed search raise (a rejected query still scores as a
    counted retrieval error: it is the model's query that failed, not the engine)."""
    queries = list(dict.fromkeys(p.query for p in pendings if p.query is not None))
    depth = max((p.spec.depth for p in pendings if p.query is not None), default=1)
    rankings: dict[str, list[str] | None] = {}
    for batch in _batches(queries, batch_size, progress):
        try:
            hits = [_ranking_or_none(h) for h in search(batch, depth)]
        except Exception:
            if not count_errors:
                raise
            logger.exception("verl-rec: retrieval failed for %d queries, the first %r", len(batch), batch[0][:200])
            hits = [None] * len(batch)
        rankings.update(zip(batch, hits))
    return [finish(p) if p.query is None else score_ranking(p.parsed, rankings[p.query], p.qrels, p.spec)
            for p in pendings]


class ServiceScorer:
    """One recipe's reward (``reward.reward_kwargs``) against the node's retrieval service: what
    the reward manager runs for each sample, without veRL (the benchmark drives it too)."""

    def __init__(self, settings: RewardSettings, service: PositionService | None = None) -> None:
        self.settings = settings
        if service is None and settings.retrieval is not None:
            service = RetrievalClient(settings.retrieval)
        self.service = service

    @classmethod
    def from_reward_kwargs(cls, values: Mapping[str, Any] | None) -> ServiceScorer:
        return cls(RewardSettings.from_mapping(values))

    async def score_text(self, text: str, ground_truth: Any, prompt_format: str = DEFAULT_FORMAT,
                         candidates: Collection[str] | None = None, think_prefilled: bool | None = None) -> RewardResult:
        """:meth:`score_output` for a caller holding a stored ground truth (any form
        :func:`~verl_rec.qrels.parse_qrels` reads) and a format name (the benchmark, tests)."""
        return await self.score_output(text, parse_qrels(ground_truth), get_format(prompt_format), candidates,
                                       think_prefilled)

    async def score_output(self, text: str, qrels: dict[str, float], fmt: PromptFormat,
                           candidates: Collection[str] | None = None, think_prefilled: bool | None = None) -> RewardResult:
        """Score one output. ``candidates``: the prompt's item ids (re-ranking); ``think_prefilled``:
        whether this rollout's prompt opened ``<think>`` (None: the recipe's or the format's setting)."""
        pending = prepare(text, qrels, self.settings.format_spec(fmt, think_prefilled), self.settings.reward, candidates)
        if pending.query is not None and self.service is None:
            raise KeyError("reward.reward_kwargs.retrieval is required for query-writing formats")
        return await score_with_service(pending, self.service)
