"""Everything the plugin registers with veRL, in one place.

Cheap at import: the platform registry is already loaded by ``import verl``; the
engine and rollout registries are filled by post-import hooks when veRL itself
imports them (see ``import_hooks``).
"""

from __future__ import annotations

from types import ModuleType

from verl_rec.integration.cpu.engines import FSDP_ENGINE_MODULE, register_cpu_engines
from verl_rec.integration.import_hooks import when_imported
from verl_rec.integration.cpu.names import ROLLOUT_NAME
from verl_rec.integration.cpu.platform import cpu_platform_selected, register_cpu_platform

REPLICA_MODULE = "verl.workers.rollout.replica"
ROLLOUT_BASE_MODULE = "verl.workers.rollout.base"
ADAPTER_FQN = "verl_rec.integration.cpu.hf_adapter.HFServerAdapter"


def _load_hf_replica() -> type:
    from verl_rec.integration.cpu.hf_replica import HFReplica

    return HFReplica


def _register_hf_replica(replica_module: ModuleType) -> None:
    """Server side: ``LLMServerManager`` resolves ``rollout.name`` here."""
    replica_module.RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_hf_replica)


def _register_hf_adapter(base_module: ModuleType) -> None:
    """Worker side: ``get_rollout_class(name, mode)`` reads this (name, mode) -> FQN table."""
    base_module._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_FQN


def register_all() -> None:
    """Called by the ``verl.plugins`` entry point in every process that imports veRL."""
    register_cpu_platform()
    if cpu_platform_selected():
        from verl_rec.integration.cpu.process_group import install_gloo_backend_fix

        install_gloo_backend_fix()
    when_imported(FSDP_ENGINE_MODULE, register_cpu_engines)
    when_imported(REPLICA_MODULE, _register_hf_replica)
    when_imported(ROLLOUT_BASE_MODULE, _register_hf_adapter)
