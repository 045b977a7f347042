"""Every override that turns a paper recipe into a run that fits a 2-core CPU, in one place.

A recipe run on the CPU is ``main_ppo --config-dir <recipes> --config-name <recipe>`` plus:

1. :func:`verl_rec.cpu_backend.overrides.cpu_overrides`: the CPU platform, the ``hf`` rollout,
   Ray's logical CPUs and GPUs (the device);
2. :func:`recipe_cpu_overrides` below: the model (a tiny local one), no offloading or gradient
   checkpointing (a CPU has nothing to offload to), smaller batches, shorter responses, a few
   validation rows, a step count, and engine options that fit the machine (a 512 MB JVM heap,
   one search thread).

Nothing else changes: the recipe's data paths (under ``$VERL_REC_DATA``), prompt format,
reward, metrics and GRPO settings are the ones a GPU run uses. ``docs/learning.md`` lists these
overrides for readers; :func:`describe` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: engine options per retrieval backend, merged into the recipe's ``backend_options``
ENGINE_OPTIONS: dict[str, dict[str, object]] = {
    "lucene": {"heap": "512m", "threads": 1},
    "dense": {"threads": 1},
    "bm25s": {"threads": 1},
}

ACTOR, ROLLOUT, REF = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.ref"

#: the device: what a GPU recipe sets for GPU memory that a CPU run must undo
DEVICE_OVERRIDES = (
    "actor_rollout_ref.model.enable_gradient_checkpointing=False",
    f"{ACTOR}.fsdp_config.param_offload=False",
    f"{ACTOR}.fsdp_config.optimizer_offload=False",
    f"{REF}.fsdp_config.param_offload=False",
)


@dataclass(frozen=True)
class CpuSizes:
    """Batch, lengths and steps of a CPU run; the defaults make a 2-step smoke run (its time:
    docs/performance.md, "CPU settings")."""

    train_batch_size: int = 2
    rollout_n: int = 4
    max_prompt_length: int = 512
    max_response_length: int = 64
    val_max_samples: int = 4
    steps: int = 2
    val_before_train: bool = False
    test_freq: int | None = None  # None: validate after the last step only
    save_freq: int = -1  # -1: no checkpoints

    def overrides(self) -> list[str]:
        micro = self.train_batch_size * self.rollout_n
        return [
            f"data.train_batch_size={self.train_batch_size}",
            f"data.max_prompt_length={self.max_prompt_length}",
            f"data.max_response_length={self.max_response_length}",
            f"data.val_max_samples={self.val_max_samples}",
            f"{ROLLOUT}.n={self.rollout_n}",
            f"{ACTOR}.ppo_mini_batch_size={self.train_batch_size}",
            f"{ACTOR}.ppo_micro_batch_size_per_gpu={micro}",
            f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu={micro}",
            f"{REF}.log_prob_micro_batch_size_per_gpu={micro}",
            f"trainer.total_training_steps={self.steps}",
            f"trainer.val_before_train={self.val_before_train}",
            f"trainer.test_freq={self.test_freq or self.steps}",
            f"trainer.save_freq={self.save_freq}",
        ]


def engine_overrides(backend: str | None) -> list[str]:
    """Engine options for the recipe's retrieval backend (none for a recipe without retrieval)."""
    options = ENGINE_OPTIONS.get(backend or "", {})
    return [f"reward.reward_kwargs.retrieval.backend_options.{key}={value}" for key, value in options.items()]


def recipe_cpu_overrides(model_dir: Path | str, out_dir: Path | str, backend: str | None,
                         sizes: CpuSizes = CpuSizes()) -> list[str]:
    """The overrides after ``cpu_overrides()`` that run a recipe with ``model_dir`` on this machine."""
    return [
        f"actor_rollout_ref.model.path={model_dir}",
        *DEVICE_OVERRIDES,
        *sizes.overrides(),
        *engine_overrides(backend),
        f"trainer.default_local_dir={Path(out_dir) / 'checkpoints'}",
    ]


def describe() -> str:
    """The overrides as text, for docs and ``python -m verl_rec.devkit.cpu_sizes``."""
    from verl_rec.cpu_backend.overrides import cpu_overrides

    lines = ["# the device (verl_rec.cpu_backend.overrides.cpu_overrides)", *cpu_overrides(),
             "# the CPU run (verl_rec.devkit.cpu_sizes.recipe_cpu_overrides)",
             *recipe_cpu_overrides("<tiny model>", "<out>", None)]
    for backend in ENGINE_OPTIONS:
        lines += [f"# engine options, backend {backend}", *engine_overrides(backend)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
