"""Find or start the node's retrieval service, and talk to it from any Ray process."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from verl_rec.retrieval.service import RetrievalService, ServiceConfig

logger = logging.getLogger(__name__)


def service_name(config: ServiceConfig, node_id: str) -> str:
    return f"{config.name}@{node_id}"


def get_or_start_service(config: ServiceConfig):
    """The handle of this node's service, created on first use (``get_if_exists``)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray.get_runtime_context().get_node_id()
    actor_cls = ray.remote(RetrievalService)
    return actor_cls.options(
        name=service_name(config, node_id),
        namespace=config.namespace,
        get_if_exists=True,
        max_restarts=-1,
        max_concurrency=10_000,
        num_cpus=config.num_cpus,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    ).remote(config)


class RetrievalClient:
    """Async client: re-resolves the service after a failure so a restart is picked up."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._handle = None

    def _service(self):
        if self._handle is None:
            self._handle = get_or_start_service(self.config)
        return self._handle

    async def target_positions(self, query: str, k: int, targets: Sequence[str]) -> dict[str, int]:
        try:
            return await self._service().target_positions.remote(query, k, list(targets))
        except Exception:
            self._handle = None  # next call looks the (restarted) service up again
            raise

    async def ranking(self, query: str, k: int) -> list[str]:
        try:
            return await self._service().ranking.remote(query, k)
        except Exception:
            self._handle = None
            raise

    async def info(self) -> dict[str, Any]:
        return await self._service().info.remote()
