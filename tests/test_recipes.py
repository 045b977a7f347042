"""Every recipe composes with veRL 0.9's own config and passes veRL's own validation."""

import inspect
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from verl_rec.recipes import RECIPES_DIR as RECIPES
from verl_rec.recipes import recipe_names
from verl_rec.reward.reward_kwargs import RewardSettings
from verl_rec.tasks.formats import PAPER_PREFILL, get_format

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
                "seqrec_beauty_inductive", "rerank_esci", "quickstart", "esci_bm25_transfer"}
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


#: what the released training scripts set, per recipe (docs/fidelity.md): steps up to the checkpoint
#: the paper's evaluation used, test_freq, save_freq, GPUs (= rollout TP), and the released prompt
RELEASED = {
    "esci_bm25": (1400, 10, 100, 2, "paper_sparse"),
    "esci_dense": (1400, 20, 200, 2, "paper_esci_dense"),  # no released checkpoint: the ESCI BM25 budget
    "c4_bm25": (200, 10, 50, 1, "paper_sparse"),
    "c4_dense": (800, 20, 200, 2, "paper_c4_dense"),
    "seqrec_beauty_transductive": (1000, 10, 100, 2, "paper_seqrec"),
    "seqrec_beauty_inductive": (1000, 10, 100, 2, "paper_seqrec"),
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_paper_recipes_follow_the_released_scripts(name):
    steps, test_freq, save_freq, gpus, prompt_format = RELEASED[name]
    cfg = compose_recipe(name)
    trainer, rollout, actor = cfg.trainer, cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.actor
    assert (trainer.total_training_steps, trainer.test_freq, trainer.save_freq) == (steps, test_freq, save_freq)
    assert trainer.val_before_train is False and trainer.n_gpus_per_node == gpus
    assert (rollout.tensor_model_parallel_size, rollout.gpu_memory_utilization) == (gpus, 0.3)
    assert (cfg.data.train_batch_size, rollout.n, actor.ppo_mini_batch_size) == (32, 12, 32)  # one update per step
    assert actor.optim.clip_grad == 1.0
    fmt = get_format(cfg.data.prompt_format)
    assert fmt.name == prompt_format and fmt.assistant_prefill == PAPER_PREFILL and fmt.spec.think_prefilled
    kwargs = cfg.reward.reward_kwargs
    assert kwargs.format_rule == "released" and kwargs.think_prefilled is None
    assert (kwargs.repeat_penalty, kwargs.length_penalty, kwargs.max_query_words) == (0.0, 0.0, None)


def test_transfer_recipe_trains_and_validates_on_other_files():
    cfg = compose_recipe("esci_bm25_transfer")
    OmegaConf.resolve(cfg)
    assert cfg.data.train_files.endswith("esci_transfer/train.parquet")
    assert cfg.data.val_files.endswith("esci_transfer/val.parquet")
    assert cfg.reward.reward_kwargs.retrieval.index_path.endswith("esci_transfer/index_lucene")
    assert cfg.data.prompt_format == "paper_sparse" and cfg.trainer.total_training_steps == 1400


# -- no recipe sets a key that veRL 0.9.1 ignores ------------------------------------------------
#
# Checked: every leaf key that a recipe file (and the recipe files it builds on) sets is
# (1) a key of veRL's own composed ppo_trainer config, a key under one of veRL's open mappings
#     (an empty mapping veRL hands on whole, e.g. model.override_config), or one of OUR_KEYS
#     (read by verl-rec), and
# (2) not one of VERL_UNREAD, keys that veRL's schema declares but no veRL code reads; the list is
#     itself checked against veRL's source below. Not checked: whether veRL reads every other key
#     it declares (a schema key is assumed to be read unless listed).

#: keys (prefixes) that veRL does not know and verl-rec reads: the dataset and the reward manager
OUR_KEYS = {"data.prompt_format": "RecTaskDataset", "reward.reward_kwargs": "RecR1RewardManager (RewardSettings)"}
#: keys veRL 0.9.1 declares and never reads, and the only veRL files that name them (definitions)
VERL_UNREAD = {
    "actor_rollout_ref.actor.grad_clip": ("grad_clip", {"workers/config/actor.py", "workers/config/critic.py",
                                                         "workers/config/optimizer.py"}),
    "critic.grad_clip": ("grad_clip", {"workers/config/actor.py", "workers/config/critic.py",
                                       "workers/config/optimizer.py"}),
}


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1]


def recipe_files(name: str) -> list[Path]:
    """The recipe file and the recipe files it builds on (its defaults that live in our folder)."""
    path = RECIPES / f"{name}.yaml"
    files = [path]
    for entry in yaml.safe_load(path.read_text()).get("defaults", []):
        if isinstance(entry, str) and (RECIPES / f"{entry}.yaml").is_file():
            files += recipe_files(entry)
    return files


def recipe_keys(name: str) -> set[str]:
    keys = set()
    for path in recipe_files(name):
        body = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k not in ("defaults", "hydra")}
        keys |= set(_leaves(body))
    return keys


@pytest.fixture(scope="module")
def verl_keys() -> set[str]:
    """Every key and every key prefix of veRL's own ppo_trainer config."""
    import verl.trainer.config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(verl.trainer.config.__file__).parent), version_base=None):
        cfg = OmegaConf.to_container(compose(config_name="ppo_trainer"), resolve=False)
    keys = set()
    for leaf in _leaves(cfg):
        parts = leaf.split(".")
        keys |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return keys


@pytest.fixture(scope="module")
def verl_open_mappings() -> set[str]:
    """veRL keys whose default is an empty mapping that veRL hands on whole (``model.override_config``
    to the Hugging Face config, ``sampler_kwargs`` to a custom sampler): any key under them is read."""
    import verl.trainer.config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(verl.trainer.config.__file__).parent), version_base=None):
        cfg = OmegaConf.to_container(compose(config_name="ppo_trainer"), resolve=False)
    found: set[str] = set()

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            if not node and prefix:
                found.add(prefix[:-1])
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")

    walk(cfg, "")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_no_recipe_sets_a_key_verl_ignores(name, verl_keys, verl_open_mappings):
    keys = recipe_keys(name)
    assert keys, name
    ours = {k for k in keys if any(k == p or k.startswith(p + ".") for p in OUR_KEYS)}
    handed_on = {k for k in keys if any(k.startswith(p + ".") for p in verl_open_mappings)}
    unknown = sorted(keys - ours - handed_on - verl_keys)
    assert not unknown, f"{name} sets keys veRL 0.9.1 does not have (so it never reads them): {unknown}"
    unread = sorted(keys & set(VERL_UNREAD))
    assert not unread, f"{name} sets keys veRL 0.9.1 declares but never reads: {unread}"


def test_the_unread_keys_are_read_nowhere_in_verl():
    """A key listed as unread is named only in veRL's config definitions: no veRL code reads it."""
    import verl

    root = Path(verl.__file__).parent
    for key, (leaf, definitions) in VERL_UNREAD.items():
        naming = {str(p.relative_to(root)) for p in root.rglob("*.py")
                  if "tests" not in p.parts and leaf in p.read_text(encoding="utf-8", errors="replace")}
        assert naming == definitions, f"{key}: veRL now names {leaf!r} in {sorted(naming - definitions)}; recheck it"


def test_the_key_check_catches_grad_clip(verl_keys):
    """The check is live: actor.grad_clip is in veRL's schema (so only VERL_UNREAD catches it)."""
    assert "actor_rollout_ref.actor.grad_clip" in verl_keys and "actor_rollout_ref.actor.optim.clip_grad" in verl_keys
    assert "data.prompt_format" not in verl_keys
