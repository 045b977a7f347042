"""The reward contract's set of scores, as the trainer tests read them from veRL's dumps."""

from __future__ import annotations

FLOAT32_SLACK = 1e-6  # veRL keeps scores as float32: a perfect 1.1 is dumped as 1.100000023841858


def in_contract(score: float) -> bool:
    """-2 (malformed), 0 (metric 0 or a retrieval error) or 0.1 + metric with the metric in (0, 1]."""
    return score == -2.0 or score == 0.0 or 0.1 < score <= 1.1 + FLOAT32_SLACK
