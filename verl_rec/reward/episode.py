"""The reward of an agent episode: the task metric of its final answer, through the one scorer.

The final assistant turn is scored exactly as a single-turn output is (format check ->
the query's target positions from the node's retrieval service -> the Rec-R1 contract: -2 /
0 / 0.1 + m). With ``search_cost`` > 0, a well-formed answer loses that much per call (off by
default; a malformed answer stays at the format penalty). The episode adds its own logged
keys to the scorer's (:func:`agent_keys`), the same for every sample:

* ``search_calls`` / ``searches`` / ``search_errors``: calls made / answered with results / refused;
* ``search_failures``: the refused calls the retrieval service failed (a dead or restarting
  service, not the policy's call): its per-step mean shows a failing service in the metrics;
* ``first_search_<metric>``: the train metric of the first query searched (0 with no search),
  which against ``<metric>`` (the final answer's) shows whether searching helped;
* ``policy_tokens`` / ``tool_tokens``: response tokens the policy wrote (trained on) and the
  ones it was shown (tool outputs and turn markers: masked from the loss).
"""

from __future__ import annotations

import asyncio

from verl_rec.agent.episode import Episode
from verl_rec.reward.contract import RewardResult, RewardSpec
from verl_rec.reward.parsing import ParsedOutput
from verl_rec.reward.scorer import ServiceScorer, prepare, prepare_answer, score_with_service
from verl_rec.tasks.formats import PromptFormat


def first_search_key(spec: RewardSpec) -> str:
    return f"first_search_{spec.metric}"


def agent_keys(spec: RewardSpec) -> tuple[str, ...]:
    """The extra keys an episode logs on top of the scorer's."""
    return ("search_calls", "searches", "search_errors", "search_failures", first_search_key(spec), "policy_tokens",
            "tool_tokens")


async def score_episode(scorer: ServiceScorer, episode: Episode, qrels: dict[str, float],
                        prompt_format: PromptFormat) -> RewardResult:
    """Score the final turn of ``episode`` (and, for the log, its first searched query) against
    the parsed ground truth ``qrels``."""
    settings = scorer.settings
    spec = settings.reward
    fmt = settings.format_spec(prompt_format)
    final = prepare(episode.final_text, qrels, fmt, spec)
    if scorer.service is None and final.query is not None:
        raise KeyError("reward.reward_kwargs.retrieval is required for query-writing formats")
    jobs = [score_with_service(final, scorer.service)]
    if episode.first_query is not None:  # both requests leave in this tick: one call to the service
        jobs.append(score_with_service(prepare_answer(ParsedOutput(answer=episode.first_query), final.qrels, fmt, spec),
                                       scorer.service))
    results = await asyncio.gather(*jobs)
    result = results[0]
    score = result.score
    if result.extra["format_ok"] and settings.search_cost:
        score -= settings.search_cost * len(episode.calls)
    extra = dict(result.extra)
    extra.update({
        "search_calls": float(len(episode.calls)),
        "searches": float(episode.searches),
        "search_errors": float(episode.errors),
        "search_failures": float(episode.engine_failures),
        first_search_key(spec): float(results[1].extra[spec.metric]) if len(results) > 1 else 0.0,
        "policy_tokens": float(episode.policy_tokens),
        "tool_tokens": float(episode.context_tokens),
    })
    return RewardResult(score, extra)
