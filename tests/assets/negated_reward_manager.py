"""Sabotage for the learning test: verl-rec's reward manager with the score's sign flipped.

Loaded by config (``reward.reward_manager.module.path=<this file>``) when the learning test
runs with ``VERL_REC_LEARNING_SABOTAGE=negate``; the logged metrics (NDCG, format_ok) are the
real ones, so validation still measures retrieval while training is pushed the wrong way.
"""

from verl_rec.integration.reward_manager import RecR1RewardManager


class NegatedRecR1RewardManager(RecR1RewardManager):
    async def run_single(self, data):
        result = await super().run_single(data)
        return {**result, "reward_score": -result["reward_score"]}
