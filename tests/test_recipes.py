"""Every recipe composes with veRL 0.9's own config and passes veRL's own validation."""

import inspect

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from verl_rec.recipes import RECIPES_DIR as RECIPES
from verl_rec.recipes import recipe_names
from verl_rec.reward.settings import RewardSettings
from verl_rec.tasks.formats import get_format

NAMES = recipe_names()


def backend_class(kind: str) -> type:
    from verl_rec.retrieval.registry import retriever_class

    return retriever_class(kind)


def compose_recipe(name: str, overrides=()):
    """What ``main_ppo --config-dir recipes --config-name <name>`` composes."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        # what --config-dir does: veRL's config dir stays on the search path
        return compose(config_name=name, overrides=["hydra.searchpath=[pkg://verl.trainer.config]", *overrides])


def test_the_paper_recipes_are_all_here():
    expected = {"esci_bm25", "esci_dense", "c4_bm25", "c4_dense", "seqrec_beauty_transductive",
                "seqrec_beauty_inductive", "rerank_esci", "quickstart"}
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_recipe_composes_and_validates(name):
    from verl.trainer.main_ppo import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = compose_recipe(name)
    OmegaConf.resolve(cfg)
    assert cfg.algorithm.adv_estimator == "grpo"
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    settings = RewardSettings.from_mapping(cfg.reward.reward_kwargs)  # our keys: all known, all valid
    fmt = get_format(cfg.data.prompt_format)
    assert (settings.retrieval is None) == (fmt.answer_key != "query")
    assert cfg.reward.reward_manager.name == "RecR1RewardManager"
    if settings.retrieval is not None:  # every engine option is one the backend's constructor takes
        accepted = inspect.signature(backend_class(settings.retrieval.backend).__init__).parameters
        unknown = set(settings.retrieval.backend_options) - set(accepted)
        assert not unknown, f"{name}: {settings.retrieval.backend} does not take {sorted(unknown)}"
    assert "custom_reward_function" not in cfg or cfg.custom_reward_function.path is None  # legacy keys unused


def test_paper_hyper_parameters_in_esci_bm25():
    cfg = compose_recipe("esci_bm25")
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert (cfg.data.train_batch_size, rollout.n, rollout.temperature, rollout.top_p) == (32, 12, 0.6, 0.95)
    assert (actor.optim.lr, actor.clip_ratio, actor.entropy_coeff, actor.kl_loss_coef) == (1e-6, 0.2, 0.001, 0.001)
    assert actor.use_kl_loss and actor.kl_loss_type == "low_var_kl" and not cfg.algorithm.use_kl_in_reward
    assert cfg.reward.reward_kwargs.metric == "ndcg@1000"
    assert cfg.reward.reward_kwargs.retrieval.backend_options.k1 == 1.2


def test_a_misspelt_reward_key_fails_early():
    cfg = compose_recipe("esci_bm25", ["+reward.reward_kwargs.metrc=ndcg@10"])
    with pytest.raises(KeyError, match="metrc"):
        RewardSettings.from_mapping(cfg.reward.reward_kwargs)
