"""Per-step means of every reward key in training (verl_rec.integration.reward_curves).

The means, the rows TransferQueue gives back, the sampler veRL builds from the recipe (through
veRL's own ``PPOTrainer._build_replay_buffer``), and the settings it refuses. The real trainer
run is tests/test_trainer_reward_curves.py.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from verl_rec.integration.reward_curves import (
    RewardCurvesReplayBuffer,
    RewardCurvesReplayBufferAsync,
    metric_name,
    rec_r1_replay_buffer,
    reward_infos,
    reward_part_means,
)
from verl_rec.recipes import RECIPES_DIR


def test_every_numeric_key_gets_its_mean_whatever_the_keys_are(caplog):
    infos = [
        {"format_ok": True, "retrieval_error": 0, "query_words": 4, "repeated_share": np.float32(0.5)},
        {"format_ok": False, "retrieval_error": 1, "query_words": 10, "repeated_share": 0.0, "note": "text"},
        None,  # a sample whose reward carried no info
        {"format_ok": True, "retrieval_error": 0, "query_words": float("nan")},
    ]
    with caplog.at_level(logging.WARNING):
        means = reward_part_means(infos)
    assert means == {metric_name("format_ok"): pytest.approx(2 / 3), metric_name("retrieval_error"): pytest.approx(1 / 3),
                     metric_name("query_words"): 7.0, metric_name("repeated_share"): 0.25}
    assert metric_name("retrieval_error") == "train-aux/retrieval_error/mean"
    assert "1 sample(s) of the step carry no reward_extra_info" in caplog.text
    assert "['note', 'query_words']" in caplog.text  # left out of the means, and said so
    assert reward_part_means([]) == {}


def test_reward_infos_reads_transfer_queue_rows():
    wrapped = SimpleNamespace(data={"reward_extra_info": {"format_ok": 1.0}})  # a NonTensorData
    rows = np.array([{"reward_extra_info": {"format_ok": 0.0}}, wrapped, {"other": 1}, "junk"], dtype=object)
    assert reward_infos(rows) == [{"format_ok": 0.0}, {"format_ok": 1.0}, None, None]
    assert reward_infos([]) == []


def recipe_config(name: str = "esci_bm25", overrides=()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES_DIR), version_base=None):
        cfg = compose(config_name=name, overrides=["hydra.searchpath=[pkg://verl.trainer.config]", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


def build_with_verl(cfg):
    """The replay buffer veRL's v1 trainer builds from this config (its own method, on a bare object)."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    trainer = SimpleNamespace(config=cfg, trainer_mode=cfg.trainer.v1.trainer_mode,
                              _add_prompts_to_generate=lambda n: n)
    trainer._resolve_filter_groups_metric = lambda: PPOTrainer._resolve_filter_groups_metric(trainer)
    return PPOTrainer._build_replay_buffer(trainer)


@pytest.mark.parametrize(("mode", "cls"), [("sync", RewardCurvesReplayBuffer),
                                           ("colocate_async", RewardCurvesReplayBufferAsync),
                                           ("separate_async", RewardCurvesReplayBufferAsync)])
def test_the_recipes_make_veRL_build_the_reward_curves_sampler_for_every_trainer_mode(mode, cls):
    from verl.trainer.ppo.v1.replay_buffer import ReplayBufferAsync

    buffer = build_with_verl(recipe_config(overrides=[f"trainer.v1.trainer_mode={mode}"]))
    assert type(buffer) is cls and buffer.trainer_mode == mode
    assert isinstance(buffer, ReplayBufferAsync) == (mode != "sync")  # veRL's own policy for the mode
    assert buffer.filter_groups_metric is None and not buffer.sync_refill_failed_groups


@pytest.mark.parametrize("setting", ["algorithm.filter_groups.enable=True",
                                     "trainer.v1.sampler.sync_refill_failed_groups=True"])
def test_settings_veRL_does_not_pass_a_custom_sampler_are_refused_not_ignored(setting):
    with pytest.raises(ValueError, match=f"{setting.split('=')[0]} is on.*custom_sampler.path=null"):
        build_with_verl(recipe_config(overrides=[setting]))
    # the way out the message gives: veRL's own sampler, which honours the setting
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    plain = build_with_verl(recipe_config(overrides=[setting, "trainer.v1.sampler.custom_sampler.path=null",
                                                     "trainer.v1.sampler.custom_sampler.name=null",
                                                     "algorithm.filter_groups.metric=format_ok"]))
    assert type(plain) is ReplayBuffer


def test_sample_adds_the_means_of_a_training_batch_only(monkeypatch):
    import transfer_queue as tq
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    asked = []

    def fake_sample(self, global_steps, partition_id, batch_size):
        return SimpleNamespace(keys=["u0_0_0", "u0_1_0"], partition_id=partition_id), {"training/x": 1.0}

    def fake_get(keys, partition_id, select_fields):
        asked.append((keys, partition_id, select_fields))
        rows = [{"reward_extra_info": {"retrieval_error": 1.0}}, {"reward_extra_info": {"retrieval_error": 0.0}}]
        return {"extra_fields": np.array(rows, dtype=object)}

    monkeypatch.setattr(ReplayBuffer, "sample", fake_sample)
    monkeypatch.setattr(tq, "kv_batch_get", fake_get)
    buffer = rec_r1_replay_buffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                                  max_off_policy_strategy="drop", sampler_kwargs={})
    _, metrics = buffer.sample(3, "train", 1)
    assert metrics == {"training/x": 1.0, "train-aux/retrieval_error/mean": 0.5}
    assert asked == [(["u0_0_0", "u0_1_0"], "train", ["extra_fields"])]
    _, val_metrics = buffer.sample(3, "val", 1)  # validation already logs val-aux/...
    assert val_metrics == {"training/x": 1.0} and len(asked) == 1

    monkeypatch.setattr(tq, "kv_batch_get", lambda **_: (_ for _ in ()).throw(RuntimeError("tq down")))
    _, metrics = buffer.sample(3, "train", 1)  # a curve that cannot be read never stops training
    assert metrics == {"training/x": 1.0}
