"""CPU backend for stock veRL: the ``cpu`` platform, FSDP engines on CPU, the ``hf`` rollout.

What a CPU-only host needs to run the stock ``main_ppo`` trainer, all through veRL's extension
points: ``platform``/``device`` (the ``cpu`` platform and its ``torch.cuda``-shaped device
module), ``engines`` (stock FSDP engines registered for device ``cpu``), ``process_group``
(the gloo backend-string fix), ``hf_rollout/`` (transformers ``generate()`` behind veRL's
rollout-server protocol) and ``overrides`` (the Hydra overrides and environment of a CPU run).
``registration`` lists what gets registered; the ``verl.plugins`` entry point
(``verl_rec.integration.plugin``) installs it on every ``import verl``. To run the stock
trainer on a CPU-only host::

    VERL_PLATFORM=cpu python -m verl.trainer.main_ppo <cpu_overrides()...> <job overrides...>

``cpu_env()`` and ``cpu_overrides()`` are the single source of truth for both parts;
``verl_rec.devkit.runner.run_tiny_grpo`` runs a complete tiny GRPO job with them.
"""

from verl_rec.cpu_backend.names import PLATFORM_ENV, PLATFORM_NAME, ROLLOUT_NAME
from verl_rec.cpu_backend.overrides import cpu_env, cpu_overrides

__all__ = ["PLATFORM_ENV", "PLATFORM_NAME", "ROLLOUT_NAME", "cpu_env", "cpu_overrides"]
