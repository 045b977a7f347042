"""The quickstart's own parts: it reads only the installed package, and engine output stays off the console.

The whole quickstart (data, index, tiny model, 2 GRPO steps) is run by hand or in CI's slow
tier through ``tests/test_trainer_rec.py``, which runs the same recipe family on stock main_ppo.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import verl_rec
from verl_rec import quickstart
from verl_rec.recipes import RECIPES_DIR


def test_trainer_command_uses_the_packaged_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("VERL_REC_DATA", str(tmp_path))
    cmd, env = quickstart.command(gpu=False, model_dir=tmp_path / "tiny", overrides=["trainer.total_training_steps=1"])
    config_dir = Path(next(a for a in cmd if a.startswith("--config-dir=")).split("=", 1)[1])
    assert config_dir == RECIPES_DIR and (config_dir / "quickstart.yaml").is_file()
    assert config_dir.is_relative_to(Path(verl_rec.__file__).parent)  # package data, not a checkout's folder
    assert "--config-name=quickstart" in cmd and cmd[-1] == "trainer.total_training_steps=1"
    assert env["VERL_REC_DATA"] == str(tmp_path) and env["VERL_PLATFORM"] == "cpu"
    assert f"actor_rollout_ref.model.path={tmp_path / 'tiny'}" in cmd


def test_engine_output_goes_to_the_log_not_the_console(tmp_path, capfd):
    log_path = tmp_path / "engines.log"
    with log_path.open("w") as log:
        quickstart.say("before")
        with quickstart.engine_output(log):
            print("python print inside")
            print("python stderr inside", file=sys.stderr)
            subprocess.run([sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"],
                           check=True)
        quickstart.say("after")
    console = capfd.readouterr()
    logged = log_path.read_text()
    for line in ("python print inside", "python stderr inside", "child out", "child err"):
        assert line in logged and line not in console.out + console.err
    assert console.out.splitlines() == ["[quickstart] before", "[quickstart] after"]


def test_verbose_leaves_engine_output_on_the_console(capfd):
    with quickstart.engine_output(None):
        subprocess.run([sys.executable, "-c", "print('child out')"], check=True)
    assert "child out" in capfd.readouterr().out


def test_summary_compares_first_and_last_validation():
    history = {0: {"val-core/a/ndcg@10/mean@1": 0.1, "val-core/b/ndcg@10/mean@1": 0.3},
               1: {"critic/score/mean": 0.5},
               2: {"val-core/a/ndcg@10/mean@1": 0.4, "val-core/b/ndcg@10/mean@1": 0.6}}
    assert quickstart.summary(history) == "val NDCG@10 0.2000 at step 0 -> 0.5000 at step 2"
    assert quickstart.summary({1: {"critic/score/mean": 0.5}}) is None
    # over queries: source a has 3 validation rows, b has 1
    assert quickstart.summary(history, {"a": 3, "b": 1}) == "val NDCG@10 0.1500 at step 0 -> 0.4500 at step 2"


def test_summary_shows_ndcg_and_reward_of_the_untrained_and_trained_policy():
    history = {0: {"val-core/a/reward/mean@1": -2.0, "val-aux/a/ndcg@10/mean@1": 0.0},
               3: {"val-core/a/reward/mean@1": 0.5, "val-aux/a/ndcg@10/mean@1": 0.25}}
    assert quickstart.summary(history) == "val NDCG@10 0.0000 at step 0 -> 0.2500 at step 3; val reward -2.0000 -> 0.5000"


def test_steps_option_sets_the_step_count(tmp_path):
    cmd, _ = quickstart.command(gpu=False, model_dir=tmp_path, overrides=["x=1"], steps=5)
    assert cmd[-2:] == ["trainer.total_training_steps=5", "x=1"]
