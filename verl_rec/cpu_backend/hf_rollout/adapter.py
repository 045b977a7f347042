"""``BaseRollout`` for the "hf" backend, living inside the hybrid training worker.

veRL's actor worker calls ``rollout.update_weights(per_tensor_param, global_steps=...)``
after every training step (``checkpoint_engine.backend=naive``). This adapter
packs the full tensors into one flat buffer (:mod:`~verl_rec.cpu_backend.hf_rollout.weight_buffer`)
and ships it to its replica's ``HFRolloutServer`` through the Ray object store, so the server
always samples from the current actor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import ray
import torch
from verl.workers.rollout.base import BaseRollout

from verl_rec.cpu_backend.hf_rollout.replica import server_actor_name
from verl_rec.cpu_backend.hf_rollout.weight_buffer import pack


class HFServerAdapter(BaseRollout):
    """Pushes actor weights to the HF server; sleep/wake are no-ops (the model stays resident)."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self.is_leader_rank = rank % rollout_world_size == 0
        self._server: ray.actor.ActorHandle | None = None
        self._buffer: np.ndarray | None = None  # reused by every sync: the layout never changes

    def _server_handle(self) -> ray.actor.ActorHandle:
        # Looked up lazily: servers are launched after the hybrid workers are built.
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Iterable[tuple[str, torch.Tensor]],
        global_steps: int | None = None,
        wire_format: str = "named_tensors",
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout supports wire_format='named_tensors' only, got {wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("hf rollout does not load LoRA adapters; set model.lora.merge=True")
        # Every rank drains the generator: producing full tensors may involve collectives.
        if not self.is_leader_rank:
            for _ in weights:
                pass
            return
        self._buffer, slots = pack(weights, reuse=self._buffer)
        buffer_ref = ray.put(self._buffer)  # one copy into the object store; the server reads it in place
        await self._server_handle().update_packed_weights.remote(buffer_ref, slots, global_steps)

    async def resume(self, tags: list[str]) -> None:
        pass

    async def release(self) -> None:
        pass
