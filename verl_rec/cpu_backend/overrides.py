"""The Hydra overrides (and environment) that put stock ``main_ppo`` on the CPU.

One source of truth for tests, scripts and docs. Each entry answers one measured
obstacle; task-specific keys (data, model, batch sizes, reward) are not here.
"""

from __future__ import annotations

import os

from verl_rec.cpu_backend.names import PLATFORM_ENV, PLATFORM_NAME, ROLLOUT_NAME

FLOAT32 = "{param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}"


def cpu_env() -> dict[str, str]:
    """Environment for the ``main_ppo`` process; local Ray workers inherit it."""
    return {
        PLATFORM_ENV: PLATFORM_NAME,  # veRL's platform selector -> our "cpu" platform
        # Ray gives each worker one torch thread unless this is set; the training worker then
        # uses one core of the machine. A user's own setting wins.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",  # never reach for the model hub
        "TRANSFORMERS_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def cpu_overrides(num_cpus: int = 16, num_gpus: int = 1, storage_units: int = 1) -> list[str]:
    """Overrides for ``python -m verl.trainer.main_ppo`` on a CPU-only host.

    ``num_cpus`` over-subscribes Ray logically: TransferQueue, agent-loop and reward
    actors each reserve a CPU, and with 2 real cores the run would otherwise hang.
    ``num_gpus`` logical GPUs are what the trainer's resource check counts; one
    training worker process is started per logical GPU.
    """
    return [
        "trainer.device=cpu",
        f"trainer.n_gpus_per_node={num_gpus}",
        "trainer.nnodes=1",
        "trainer.logger=[console]",
        f"ray_kwargs.ray_init.num_cpus={num_cpus}",
        f"+ray_kwargs.ray_init.num_gpus={num_gpus}",
        "+ray_kwargs.ray_init.include_dashboard=False",
        f"transfer_queue.backend.SimpleStorage.num_data_storage_units={storage_units}",
        # FSDP1 needs a GPU (sync_module_states); FSDP2 runs on CPU with gloo.
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
        # FlashAttention-2 is veRL's default attention; torch.compile is slow to start on CPU
        # (docs/performance.md, "CPU settings").
        # "++": the recipes set the key (flash-attn or sdpa), a bare job does not.
        "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.actor.use_torch_compile=False",
        "actor_rollout_ref.actor.fsdp_config.use_torch_compile=False",
        "actor_rollout_ref.ref.fsdp_config.use_torch_compile=False",
        # veRL's FSDP computes in bfloat16 when mixed_precision is unset; a CPU without
        # AVX512-BF16/AMX multiplies bf16 matrices far slower than float32 (python -m
        # bench.cpu_dtype): the actor, the ref and the rollout compute in float32.
        *(f"+actor_rollout_ref.{role}.fsdp_config.mixed_precision={FLOAT32}" for role in ("actor", "ref")),
        "actor_rollout_ref.rollout.dtype=float32",
        # transformers generate() in one Ray actor per replica (verl_rec.cpu_backend.hf_rollout.server).
        f"actor_rollout_ref.rollout.name={ROLLOUT_NAME}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        # Fewer helper processes: each one imports torch + veRL (docs/performance.md, "CPU settings").
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        "data.dataloader_num_workers=0",
    ]
