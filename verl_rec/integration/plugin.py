"""Entry point of the ``verl.plugins`` group: loaded by every ``import verl``.

Registers, in every process that imports veRL (driver, TaskRunner, Ray workers):

* the ``rec_r1`` reward manager, once veRL imports its reward-manager registry;
* the agent loops that prompt formats name (:attr:`~verl_rec.tasks.formats.PromptFormat.agent_loop`):
  ``verl_rec_prefill`` (a pre-filled assistant turn) and ``rec_search_agent`` (the multi-turn
  search agent), once veRL imports its agent loops (the agent-loop registry is filled then);
* the CPU backend: the ``cpu`` platform (selected by ``VERL_PLATFORM=cpu``), FSDP engines for
  device ``cpu`` and the ``hf`` rollout (see :mod:`verl_rec.cpu_backend`);
* the recipes' OmegaConf resolvers (:mod:`verl_rec.recipes.resolvers`).

veRL swallows plugin errors at DEBUG level, so a broken registration would fail silently far
away (e.g. "Unknown reward manager: rec_r1" inside a Ray worker). This module never raises
(it must not break ``import verl``) but logs any failure at WARNING, with the traceback.
"""

import logging

logger = logging.getLogger(__name__)

REWARD_REGISTRY_MODULE = "verl.experimental.reward_loop.reward_manager"
AGENT_LOOP_MODULE = "verl.experimental.agent_loop.single_turn_agent_loop"


def _register_reward_manager(_registry_module) -> None:
    import verl_rec.integration.reward_manager  # noqa: F401  (its @register decorator runs)


def _register_agent_loops(_module) -> None:
    import verl_rec.integration.prefill_agent_loop  # noqa: F401  (their @register decorators run)
    import verl_rec.integration.search_agent_loop  # noqa: F401


def _register() -> None:
    from verl_rec.cpu_backend.registration import register_platform, registry_hooks
    from verl_rec.integration.import_hooks import when_imported
    from verl_rec.recipes.resolvers import register_resolvers

    register_platform()
    register_resolvers()  # the recipes' ${verl_rec.attn_implementation:} and ${verl_rec_path:...}
    for module_name, callback in registry_hooks():
        when_imported(module_name, callback)
    when_imported(REWARD_REGISTRY_MODULE, _register_reward_manager)
    when_imported(AGENT_LOOP_MODULE, _register_agent_loops)


try:
    _register()
except Exception:
    logger.warning("verl_rec plugin: registration with veRL failed", exc_info=True)
