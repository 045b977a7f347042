"""``RolloutReplica`` for the "hf" backend: one ``HFRolloutServer`` actor per replica.

veRL's ``LLMServerManager`` builds replicas from ``RolloutReplicaRegistry`` by
``rollout.name``; in hybrid mode it hands each replica the training workers it is
colocated with. The HF server holds its own copy of the model (no CUDA IPC on CPU),
so launching it needs nothing from those workers.
"""

from __future__ import annotations

import ray
from verl.workers.rollout.replica import RolloutReplica

from verl_rec.cpu_backend.hf_rollout.server import HFRolloutServer
from verl_rec.cpu_backend.names import ROLLOUT_NAME


def server_actor_name(replica_rank: int, name_suffix: str = "") -> str:
    """Ray actor name shared by the replica (creates it) and the adapter (looks it up)."""
    return f"{ROLLOUT_NAME}_server_{replica_rank}{name_suffix}"


class HFReplica(RolloutReplica):
    """A replica is a single-process HF model server; tensor/pipeline parallel size must be 1."""

    async def launch_servers(self) -> None:
        if self.world_size != 1:
            raise ValueError(
                f"hf rollout runs one process per replica; set rollout.tensor_model_parallel_size=1 "
                f"(got rollout world size {self.world_size})"
            )
        name = server_actor_name(self.replica_rank, self.name_suffix)
        server = (
            ray.remote(HFRolloutServer)
            .options(name=name, max_concurrency=self.max_concurrency)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        await server.ready.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = name  # the load balancer only needs a unique key

    def rollout_worker_use_gpu(self) -> bool:
        return False
