"""Everything the CPU backend registers with veRL, in one place.

Cheap at import: the platform registry is already loaded by ``import verl``; the engine and
rollout registries are filled when veRL itself imports them, so this module only lists
(registry module, callback) pairs and the plugin (``verl_rec.integration.plugin``) installs
them as post-import hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from verl_rec.cpu_backend.engines import FSDP_ENGINE_MODULE, register_cpu_engines
from verl_rec.cpu_backend.names import ROLLOUT_NAME
from verl_rec.cpu_backend.platform import cpu_platform_selected, register_cpu_platform

REPLICA_MODULE = "verl.workers.rollout.replica"
ROLLOUT_BASE_MODULE = "verl.workers.rollout.base"
ADAPTER_FQN = "verl_rec.cpu_backend.hf_rollout.adapter.HFServerAdapter"


def _load_hf_replica() -> type:
    from verl_rec.cpu_backend.hf_rollout.replica import HFReplica

    return HFReplica


def _register_hf_replica(replica_module: ModuleType) -> None:
    """Server side: ``LLMServerManager`` resolves ``rollout.name`` here."""
    replica_module.RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_hf_replica)


def _register_hf_adapter(base_module: ModuleType) -> None:
    """Worker side: ``get_rollout_class(name, mode)`` reads this (name, mode) -> FQN table."""
    base_module._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_FQN


def register_platform() -> None:
    """The ``cpu`` platform (always registered, selected only by ``VERL_PLATFORM=cpu``)."""
    register_cpu_platform()
    if cpu_platform_selected():
        from verl_rec.cpu_backend.process_group import install_gloo_backend_fix

        install_gloo_backend_fix()


def registry_hooks() -> list[tuple[str, Callable[[ModuleType], None]]]:
    """(veRL module, callback) pairs: each callback registers with that module once it is imported."""
    return [
        (FSDP_ENGINE_MODULE, register_cpu_engines),
        (REPLICA_MODULE, _register_hf_replica),
        (ROLLOUT_BASE_MODULE, _register_hf_adapter),
    ]
