"""Stock veRL trainer on CPU: platform, FSDP engines, "hf" rollout, overrides.

All registration goes through veRL's extension points and is done by
``registration.register_all`` (called from the ``verl.plugins`` entry point on every
``import verl``). To run the stock trainer on a CPU-only host::

    VERL_PLATFORM=cpu python -m verl.trainer.main_ppo <cpu_overrides()...> <job overrides...>

``cpu_env()`` and ``cpu_overrides()`` are the single source of truth for both parts;
``runner.run_tiny_grpo`` runs a complete tiny GRPO job with them.
"""

from verl_rec.integration.cpu.names import PLATFORM_ENV, PLATFORM_NAME, ROLLOUT_NAME
from verl_rec.integration.cpu.overrides import cpu_env, cpu_overrides

__all__ = ["PLATFORM_ENV", "PLATFORM_NAME", "ROLLOUT_NAME", "cpu_env", "cpu_overrides"]
