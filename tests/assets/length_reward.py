"""Test reward for CPU trainer runs: depends on response length, so it varies within a GRPO group.

Loaded by veRL from a file path (``reward.custom_reward_function.path``); returns a dict
so the extra key exercises veRL's ``reward_extra_info`` logging.
"""


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    length = len(solution_str)
    return {"score": min(length, 64) / 64.0, "response_chars": float(length)}
