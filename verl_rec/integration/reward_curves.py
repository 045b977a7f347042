"""Training curves of the reward's parts: per-step means of every key the reward manager returns.

veRL 0.9.1 logs only ``critic/score/*`` in training steps; the per-sample ``reward_extra_info``
keys (format_ok, retrieval_error, query_words, the metrics, ...) reach the logs in validation
only (``val-aux/...``). In the v1 trainer every trajectory, ``extra_fields["reward_extra_info"]``
included, sits in TransferQueue until the step ends, and the replay buffer that hands the
trainer each step's batch is chosen by config (``trainer.v1.sampler.custom_sampler``); the
metrics its ``sample`` returns are logged with the step. So :func:`rec_r1_replay_buffer` builds
veRL's own replay buffer (sync or async, as the trainer mode asks), whose ``sample`` adds
``train-aux/<key>/mean`` for every numeric key found in the step's batch, whatever the keys are.

Why not a trainer subclass (``register_trainer``): it would need a new ``trainer.v1.trainer_mode``
name, and veRL keys the replay buffer's policy and the mode's settings on that name
(``trainer_mode == "sync"``); the name ``sync`` itself cannot be registered twice.

What veRL does not pass a custom sampler: its DAPO group filtering (``algorithm.filter_groups``)
and ``sync_refill_failed_groups``. Both are off in every verl-rec recipe; the recipe forwards
them in ``sampler_kwargs`` so that turning one on fails at start, naming the key, rather than
being ignored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

logger = logging.getLogger(__name__)

PREFIX = "train-aux"


def metric_name(key: str) -> str:
    """The logged name of reward key ``key``'s per-step mean."""
    return f"{PREFIX}/{key}/mean"


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a finite number (bools count as 0/1), else None."""
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool | int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def reward_part_means(infos: Iterable[Mapping[str, Any] | None]) -> dict[str, float]:
    """Per key, the mean of its numeric values over the samples that have it.

    A sample without reward info, and a non-numeric value, are left out of the means and
    reported in a warning (never silently).
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    missing = 0
    skipped: set[str] = set()
    for info in infos:
        if not info:
            missing += 1
            continue
        for key, value in info.items():
            number = _number(value)
            if number is None:
                skipped.add(str(key))
                continue
            sums[key] = sums.get(key, 0.0) + number
            counts[key] = counts.get(key, 0) + 1
    if missing:
        logger.warning("verl-rec reward curves: %d sample(s) of the step carry no reward_extra_info", missing)
    if skipped:
        logger.warning("verl-rec reward curves: non-numeric values left out of the means of %s", sorted(skipped))
    return {metric_name(key): sums[key] / counts[key] for key in sums}


def reward_infos(extra_fields: Any) -> list[Mapping[str, Any] | None]:
    """The ``reward_extra_info`` of each sample, from TransferQueue's ``extra_fields`` column."""
    rows = extra_fields.tolist() if hasattr(extra_fields, "tolist") else list(extra_fields)
    infos = []
    for row in rows:
        row = getattr(row, "data", row)  # a NonTensorData wrapper
        infos.append(row.get("reward_extra_info") if isinstance(row, Mapping) else None)
    return infos


class RewardCurvesMixin:
    """Adds ``train-aux/<key>/mean`` to the metrics of every training batch sampled."""

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        if partition_id == "train" and batch.keys:
            metrics = {**metrics, **self._step_means(batch)}
        return batch, metrics

    @staticmethod
    def _step_means(batch) -> dict[str, float]:
        import transfer_queue as tq

        try:
            data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
            return reward_part_means(reward_infos(data["extra_fields"]))
        except Exception:  # a missing curve must not stop training; say why
            logger.warning("verl-rec reward curves: could not read this step's reward_extra_info", exc_info=True)
            return {}


class RewardCurvesReplayBuffer(RewardCurvesMixin, ReplayBuffer):
    """veRL's sync replay buffer + reward curves."""


class RewardCurvesReplayBufferAsync(RewardCurvesMixin, ReplayBufferAsync):
    """veRL's async replay buffer (colocate_async, separate_async) + reward curves."""


UNSUPPORTED = {  # sampler_kwargs key (forwarded by the recipe) -> the setting it mirrors
    "filter_groups_enabled": "algorithm.filter_groups.enable",
    "sync_refill_failed_groups": "trainer.v1.sampler.sync_refill_failed_groups",
}


def rec_r1_replay_buffer(*, trainer_mode: str, sampler_kwargs: Mapping[str, Any] | None = None, **kwargs: Any):
    """What ``trainer.v1.sampler.custom_sampler.name`` names: veRL's replay buffer for
    ``trainer_mode``, logging the reward's parts; refuses the settings veRL does not pass it."""
    options = dict(sampler_kwargs or {})
    enabled = [setting for key, setting in UNSUPPORTED.items() if options.get(key)]
    if enabled:
        raise ValueError(
            f"{', '.join(enabled)} is on, but veRL 0.9.1 does not pass it to a custom replay buffer, and verl-rec's "
            "(trainer.v1.sampler.custom_sampler, which logs train-aux/<key>/mean) would ignore it. Turn it off, or "
            "drop the reward curves: trainer.v1.sampler.custom_sampler.path=null trainer.v1.sampler.custom_sampler.name=null")
    cls = RewardCurvesReplayBuffer if trainer_mode == "sync" else RewardCurvesReplayBufferAsync
    return cls(trainer_mode=trainer_mode, sampler_kwargs=sampler_kwargs, **kwargs)


__all__ = ["PREFIX", "RewardCurvesReplayBuffer", "RewardCurvesReplayBufferAsync", "metric_name",
           "rec_r1_replay_buffer", "reward_infos", "reward_part_means"]
