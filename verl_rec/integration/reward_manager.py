"""verl-rec's reward manager for veRL 0.9's reward loop: decode, then score with the one scorer.

Per rollout: decode the response, then :class:`~verl_rec.reward.scorer.ServiceScorer` checks
the format the prompt asked for, asks the node's retrieval service for the target positions
and computes the Rec-R1 score. Returns a FIXED set of numeric ``reward_extra_info`` keys (see
:mod:`verl_rec.reward.scoring`); veRL puts the score on the last valid response token.
Loadable two ways:

* ``reward.reward_manager: {source: register, name: rec_r1}`` (registered by the
  ``verl.plugins`` entry point on every ``import verl``), or
* ``{source: importlib, name: RecR1RewardManager, module: {path: pkg://verl_rec.integration.reward_manager}}``.

Settings come from ``reward.reward_kwargs`` (:class:`~verl_rec.reward.settings.RewardSettings`).

What the rollout really did decides how the output is read: the end of the prompt is decoded,
and an output whose prompt ended with an opened ``<think>`` (the ``paper_*`` formats' pre-fill,
rendered by the ``verl_rec_prefill`` agent loop) is read as its continuation. A prompt format
with a pre-fill whose prompt did not end with it is logged once: the rollout did not render the
pre-fill (a custom ``agent_name`` or ``default_agent_loop``). Re-ranking answers are checked
against the prompt's ``extra_info["candidate_ids"]``.
A sample from the search agent loop is scored on its final turn, with the agent's logged keys
added (:mod:`verl_rec.agent.reward`).
"""

from __future__ import annotations

import logging

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from verl_rec.agent.episode import episode_from
from verl_rec.agent.prompts import AGENT_LOOP_NAME, is_agent_format
from verl_rec.agent.reward import score_episode
from verl_rec.integration.plugin import PREFILL_AGENT_LOOP
from verl_rec.retrieval.service.client import RetrievalClient
from verl_rec.reward.parsing import THINK_OPEN
from verl_rec.reward.scorer import ServiceScorer
from verl_rec.tasks.formats import DEFAULT_FORMAT, get_format

MANAGER_NAME = "rec_r1"
#: prompt tokens decoded to see how a prompt without a pre-fill ended
PROMPT_TAIL_TOKENS = 16

logger = logging.getLogger(__name__)

AGENT_LOOP_HINT = (f"agent prompt formats run in the {AGENT_LOOP_NAME} loop: "
                   f"set actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_LOOP_NAME}")


def check_agent_loop(config) -> None:
    """An agent prompt format needs the search agent loop: fail at start-up, not on the first sample."""
    prompt_format = (config.get("data") or {}).get("prompt_format") or DEFAULT_FORMAT
    agent = ((config.get("actor_rollout_ref") or {}).get("rollout") or {}).get("agent") or {}
    if is_agent_format(prompt_format) and agent.get("default_agent_loop") != AGENT_LOOP_NAME:
        raise ValueError(f"data.prompt_format={prompt_format}: {AGENT_LOOP_HINT}")


@register(MANAGER_NAME)
class RecR1RewardManager(RewardManagerBase):
    """Scores one sample per call against the shared retrieval service."""

    def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score)
        self.scorer = ServiceScorer.from_reward_kwargs(config.reward.get("reward_kwargs"))
        check_agent_loop(config)
        if isinstance(self.scorer.service, RetrievalClient):  # a GPU engine without a free GPU fails the job now
            self.scorer.service.check_can_start()
        self._warned_formats: set[str] = set()

    def prompt_opens_think(self, item, prompt_format: str) -> bool:
        """Did this rollout's prompt end with an opened ``<think>``, or with the format's whole pre-fill
        that opens one? (veRL left-pads prompts.)"""
        fmt = get_format(prompt_format)
        prefill = fmt.assistant_prefill or ""
        n_tokens = PROMPT_TAIL_TOKENS + len(prefill.encode("utf-8"))  # a token holds at least one byte
        tail = self.tokenizer.decode(item.batch["prompts"][-n_tokens:], skip_special_tokens=False)
        opened = tail.rstrip().endswith(THINK_OPEN) or bool(fmt.think_prefilled and tail.endswith(prefill))
        if fmt.assistant_prefill and not tail.endswith(fmt.assistant_prefill) and prompt_format not in self._warned_formats:
            self._warned_formats.add(prompt_format)
            logger.warning("verl-rec: prompt format %r pre-fills %r, but this rollout's prompt ends with %r: the "
                           "rollout did not render the pre-fill (agent loop %r does); outputs are read as they are",
                           prompt_format, fmt.assistant_prefill, tail[-40:], PREFILL_AGENT_LOOP)
        return opened

    async def run_single(self, data: DataProto) -> dict:
        item = data[-1:][0]
        responses = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-responses.shape[-1]:].sum())
        # Decoded inline, not in a thread as veRL's naive manager does: a thread hand-off per
        # sample spreads a worker's samples over many loop ticks, so the retrieval client would
        # send them in several Ray calls instead of one. Special tokens are kept and stripped by
        # the parser, whatever the tokenizer calls special.
        text = self.tokenizer.decode(responses[:valid], skip_special_tokens=False)
        extra_info = item.non_tensor_batch.get("extra_info") or {}
        prompt_format = extra_info.get("prompt_format", DEFAULT_FORMAT)
        ground_truth = item.non_tensor_batch["reward_model"]["ground_truth"]
        # an agent episode (verl_rec.agent): its final turn is the answer; its calls are logged
        episode = episode_from(item.non_tensor_batch.get("tool_extra_fields") or item.non_tensor_batch)
        if episode is not None:
            result = await score_episode(self.scorer, episode, ground_truth, prompt_format)
            return {"reward_score": result.score, "reward_extra_info": dict(result.extra)}
        if is_agent_format(prompt_format):
            raise ValueError(f"a {prompt_format!r} sample without an agent episode: {AGENT_LOOP_HINT}")
        candidates = extra_info.get("candidate_ids")
        result = await self.scorer.score_text(text, ground_truth, prompt_format,
                                              candidates=None if candidates is None else list(candidates),
                                              think_prefilled=self.prompt_opens_think(item, prompt_format))
        return {"reward_score": result.score, "reward_extra_info": dict(result.extra)}
