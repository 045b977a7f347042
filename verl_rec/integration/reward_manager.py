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
A sample from the search agent loop is scored on its final turn, with the agent's logged keys
added (:mod:`verl_rec.agent.reward`).
"""

from __future__ import annotations

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from verl_rec.agent.episode import episode_from
from verl_rec.agent.prompts import AGENT_LOOP_NAME, is_agent_format
from verl_rec.agent.reward import score_episode
from verl_rec.reward.scorer import ServiceScorer
from verl_rec.tasks.formats import DEFAULT_FORMAT

MANAGER_NAME = "rec_r1"
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
        result = await self.scorer.score_text(text, ground_truth, prompt_format)
        return {"reward_score": result.score, "reward_extra_info": dict(result.extra)}
