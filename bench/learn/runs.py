"""One GRPO run per (system, seed): stock ``main_ppo`` on the system's recipe, validating on seen and unseen phrasings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.learn.settings import RECIPES, Settings, say
from verl_rec.devkit.runner import RunResult, run_main_ppo
from verl_rec.recipes import RECIPES_DIR

VALIDATION_DIR, CHECKPOINTS_DIR, DONE_FILE = "validation", "checkpoints", "run.json"


def run_name(system: str, seed: int) -> str:
    return f"{system}_seed{seed}"


def trained_checkpoint(run_dir: Path, step: int) -> Path:
    """The HF folder veRL wrote after step ``step`` (config, tokenizer and weights)."""
    return run_dir / CHECKPOINTS_DIR / f"global_step_{step}" / "actor" / "huggingface"


def overrides(system: str, seed: int, model: Path, task: Path, run_dir: Path, settings: Settings) -> list[str]:
    """The run's Hydra overrides on top of its recipe: the seen and the unseen held-out files,
    the seed of both the data order and the rollout sampler, the schedule, the final checkpoint."""
    return [
        f"actor_rollout_ref.model.path={model}",
        f"data.val_files=[{task / 'test.parquet'},{task / 'test_unseen.parquet'}]",
        f"data.seed={seed}",
        f"actor_rollout_ref.rollout.seed={seed}",
        f"trainer.total_training_steps={settings.steps}",
        f"trainer.test_freq={settings.val_every}",
        f"trainer.save_freq={settings.steps}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]",
        "trainer.max_actor_ckpt_to_keep=1",
        f"trainer.validation_data_dir={run_dir / VALIDATION_DIR}",
        f"trainer.default_local_dir={run_dir / CHECKPOINTS_DIR}",
        f"trainer.rollout_data_dir={run_dir / 'rollouts'}",
        f"trainer.experiment_name={run_name(system, seed)}",
    ]


def train(system: str, seed: int, model: Path, work: Path, settings: Settings) -> dict[str, Any]:
    """Run (or reuse, when its ``run.json`` says it finished with these settings) one GRPO run."""
    run_dir = work / "runs" / run_name(system, seed)
    done = run_dir / DONE_FILE
    wanted = {"system": system, "seed": seed, "recipe": RECIPES[system], "steps": settings.steps,
              "val_every": settings.val_every}
    if done.is_file() and {k: v for k, v in json.loads(done.read_text()).items() if k in wanted} == wanted:
        say(f"{run_name(system, seed)}: reusing {run_dir}")
        return json.loads(done.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (run_dir / VALIDATION_DIR).glob("*.jsonl"):
        stale.unlink()
    say(f"{run_name(system, seed)}: {settings.steps} GRPO steps on recipe {RECIPES[system]} (log {run_dir / 'main_ppo.log'})")
    started = time.monotonic()
    result: RunResult = run_main_ppo(
        overrides(system, seed, model, work / "quickstart" / "vaswani", run_dir, settings), run_dir / "main_ppo.log",
        timeout_s=settings.timeout_s, config_args=[f"--config-dir={RECIPES_DIR}", f"--config-name={RECIPES[system]}"],
        extra_env={"VERL_REC_DATA": str(work)})
    if result.returncode != 0:
        raise SystemExit(f"main_ppo failed (exit {result.returncode}); log {result.log_path}:\n{result.tail(3000)}")
    checkpoint = trained_checkpoint(run_dir, settings.steps)
    if not (checkpoint / "config.json").is_file():
        raise SystemExit(f"{checkpoint}: main_ppo finished but wrote no HF checkpoint (actor.checkpoint.save_contents)")
    info = {**wanted, "seconds": time.monotonic() - started, "peak_rss_bytes": result.peak_rss_bytes,
            "checkpoint": str(checkpoint), "metrics": {str(s): m for s, m in sorted(result.metrics.items())}}
    done.write_text(json.dumps(info, indent=1) + "\n")
    say(f"{run_name(system, seed)}: done in {info['seconds']:.0f} s")
    return info
