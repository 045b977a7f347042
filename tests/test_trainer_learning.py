"""GRPO through stock ``main_ppo`` makes a policy retrieve better: the learning test.

A CPU-sized policy (the dev kit's tiny model) is warmed up on the answer FORMAT only: one word
drawn uniformly from a menu of catalog words and decoys (:mod:`verl_rec.devkit.vocab_task`),
never told which word finds which topic. It then trains with GRPO through stock ``main_ppo``
on the ``esci_bm25`` recipe (CPU sizes, the task's files, a learning rate for a 100k-parameter
model) with the real reward: Lucene BM25 NDCG through the retrieval service. Validation NDCG@10
before training (``val_before_train``) and after the last step must differ by ``MARGIN``.

Break learning to see it fail (documented in docs/learning.md):

* ``VERL_REC_LEARNING_SABOTAGE=lr0``: ``actor.optim.lr=0``, the policy never moves;
* ``VERL_REC_LEARNING_SABOTAGE=negate``: the reward manager's score with its sign flipped
  (``tests/assets/negated_reward_manager.py``), GRPO pushes away from what retrieves.

``VERL_REC_LEARNING_SEED`` picks the seed of the task, the model and the warm-up (default 0).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers_recipe_data import compose_recipe
from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
from verl_rec.recipes import RECIPES_DIR

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).parent / "assets"
RECIPE = "esci_bm25"
MARGIN = 0.5
SEED = int(os.environ.get("VERL_REC_LEARNING_SEED", "0"))
SABOTAGE = os.environ.get("VERL_REC_LEARNING_SABOTAGE", "")
STEPS = 6
SIZES = CpuSizes(train_batch_size=4, rollout_n=8, max_prompt_length=384, max_response_length=32,
                 val_max_samples=16, steps=STEPS, val_before_train=True, test_freq=STEPS)
# Plain SGD, not the recipe's AdamW: Adam scales every gradient to an lr-sized step, so the tiny,
# noisy gradients of the near-deterministic format tokens become steady drift that breaks the
# format (docs/learning.md); SGD moves each weight in proportion to its gradient.
OPTIMIZER = ["actor_rollout_ref.actor.optim.optimizer=SGD", "actor_rollout_ref.actor.optim.weight_decay=0"]
LEARNING_RATE = 2.0
KL_COEF = 0.05
VAL_SAMPLES = 4
NDCG_KEY = f"val-aux/vocab_task/ndcg@10/mean@{VAL_SAMPLES}"

SABOTAGES = {
    "": [],
    "lr0": ["actor_rollout_ref.actor.optim.lr=0"],
    "negate": ["reward.reward_manager.name=NegatedRecR1RewardManager",
               f"reward.reward_manager.module.path={ASSETS / 'negated_reward_manager.py'}"],
}


@pytest.fixture(scope="module")
def task_and_model(tmp_path_factory):
    from verl_rec.data_preprocess import build_index
    from verl_rec.devkit.format_warmup import warm_up_format
    from verl_rec.devkit.tiny_model import build_tiny_model
    from verl_rec.devkit.vocab_task import write_vocab_task

    prompt_format = compose_recipe(RECIPE).data.prompt_format  # the rollout renders the recipe's prompt
    task = write_vocab_task(tmp_path_factory.mktemp("vocab_task"), seed=SEED)
    assert build_index.main(["--corpus", str(task.corpus), "--backend", "lucene", "--index",
                             str(task.folder / "index_lucene"), "--threads", "1", "--heap", "512m", "--quiet"]) == 0
    model = build_tiny_model(tmp_path_factory.mktemp("tiny"), vocab_size=1024, seed=SEED, extra_corpus=task.tokenizer_text())
    warm_up_format(model, task.train, prompt_format, steps=200, batch_size=2, seed=SEED, max_words=1,
                   answer_words=task.menu, every_answer=True)
    return task, model


def test_grpo_lifts_validation_ndcg_above_the_format_warmed_policy(task_and_model, tmp_path):
    from verl_rec.devkit.runner import run_main_ppo

    assert SABOTAGE in SABOTAGES, f"VERL_REC_LEARNING_SABOTAGE={SABOTAGE!r}: known values {sorted(SABOTAGES)}"
    task, model = task_and_model
    result = run_main_ppo([
        *recipe_cpu_overrides(model, tmp_path, "lucene", SIZES),
        f"data.train_files={task.train}", f"data.val_files={task.val}",
        f"reward.reward_kwargs.retrieval.index_path={task.folder / 'index_lucene'}",
        f"actor_rollout_ref.actor.optim.lr={LEARNING_RATE}",
        f"actor_rollout_ref.actor.kl_loss_coef={KL_COEF}",
        *OPTIMIZER,
        # validation samples the policy as training does (the recipe's temperature and top-p),
        # VAL_SAMPLES answers per prompt: its expected NDCG. A greedy answer is one menu word for
        # every prompt, so its NDCG could only be 0 or 1.
        "actor_rollout_ref.rollout.val_kwargs.do_sample=True", f"actor_rollout_ref.rollout.val_kwargs.n={VAL_SAMPLES}",
        "actor_rollout_ref.rollout.val_kwargs.temperature=${actor_rollout_ref.rollout.temperature}",
        "actor_rollout_ref.rollout.val_kwargs.top_p=${actor_rollout_ref.rollout.top_p}",
        f"data.seed={SEED}",
        *SABOTAGES[SABOTAGE],
    ], tmp_path / "main_ppo.log", timeout_s=900, config_args=[f"--config-dir={RECIPES_DIR}", f"--config-name={RECIPE}"])
    assert result.returncode == 0, result.tail()
    assert result.leftover == [], f"processes left behind: {result.leftover}"
    assert {0, STEPS} <= set(result.metrics), result.tail()

    before, after = result.metrics[0][NDCG_KEY], result.metrics[STEPS][NDCG_KEY]
    rewards = [round(result.metrics[s].get("critic/score/mean", float("nan")), 3) for s in range(1, STEPS + 1)]
    print(f"\n[learning] seed {SEED} sabotage {SABOTAGE or 'none'}: val NDCG@10 {before:.3f} -> {after:.3f} "
          f"(margin {MARGIN}); train reward per step {rewards}; {result.wall_s:.0f}s")
    assert after >= before + MARGIN, f"validation NDCG@10 {before:.3f} -> {after:.3f}: less than +{MARGIN}"
