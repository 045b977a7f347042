"""The stages that train: data and index, the own-query warm-up, GRPO through stock ``main_ppo``, then the evaluation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.learn.evaluation import collection_query_ndcg, evaluate_command
from bench.learn.settings import PROMPT_FORMAT, RECIPE, Settings, say
from bench.smollm2 import convert
from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
from verl_rec.devkit.runner import RunResult, run_main_ppo
from verl_rec.recipes import RECIPES_DIR


def build_data(work: Path, vaswani: Path) -> Path:
    """The recipe's folder under ``$VERL_REC_DATA=work``: records, corpus, Lucene index."""
    from verl_rec.builders.trec_collection import build_trec_collection
    from verl_rec.retrieval.lucene.build import build_lucene_index

    folder = work / "vaswani"
    if not (folder / "index_lucene").is_dir():
        build_trec_collection(vaswani / "corpus" / "doc-text.trec", vaswani / "query-text.trec", vaswani / "qrels", folder)
        build_lucene_index(folder / "corpus.jsonl", folder / "index_lucene", threads=2, heap="1g", progress=False)
    return folder


def trainer_run(model: Path, run_dir: Path, data_root: Path, sizes: CpuSizes, settings: Settings,
                extra: list[str] = ()) -> RunResult:
    """Stock main_ppo on the recipe with the CPU sizes; fails loudly on a failed run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_main_ppo([
        *recipe_cpu_overrides(model, run_dir, "lucene", sizes),
        f"actor_rollout_ref.actor.optim.lr={settings.lr}",
        f"actor_rollout_ref.rollout.temperature={settings.temperature}",
        f"actor_rollout_ref.actor.use_kl_loss={settings.kl_loss}",
        "actor_rollout_ref.rollout.calculate_log_probs=True",
        f"algorithm.rollout_correction.bypass_mode={settings.bypass_old_log_prob}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,hf_model]",
        "trainer.max_actor_ckpt_to_keep=2",
        "trainer.total_epochs=100",
        f"trainer.rollout_data_dir={run_dir / 'rollouts'}",
        *extra,
    ], run_dir / "main_ppo.log", timeout_s=settings.timeout_s,
        config_args=[f"--config-dir={RECIPES_DIR}", f"--config-name={RECIPE}"],
        extra_env={"VERL_REC_DATA": str(data_root)})
    if result.returncode != 0:
        raise SystemExit(f"main_ppo failed (exit {result.returncode}); log {result.log_path}:\n{result.tail(3000)}")
    return result


def trained_checkpoint(run_dir: Path, step: int) -> Path:
    """The HF folder veRL wrote after step ``step`` (config, tokenizer and weights)."""
    return run_dir / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface"


def settings_changed(warmup: dict[str, Any], settings: Settings) -> bool:
    """A saved warm-up is reused only when it was made with the same warm-up settings."""
    return (warmup.get("steps"), warmup.get("lr"), warmup.get("every"), warmup.get("sampling", {}).get("seed")) != (
        settings.warmup_steps, settings.warmup_lr, settings.warmup_every, settings.seed)


def train_all(work: Path, settings: Settings, vaswani: Path) -> dict[str, Any]:
    """Every stage, in order; returns what the logs do not hold."""
    from verl_rec.devkit.own_query_warmup import warm_up_with_own_queries
    from verl_rec.evaluation.generate import Sampling

    started, load_start, stages = time.monotonic(), os.getloadavg(), {}

    def stage(name: str, t: float) -> None:
        stages[name] = time.monotonic() - t
        say(f"{name}: {stages[name]:.0f}s")

    t = time.monotonic()
    base_model = convert(work / "smollm2")
    task = build_data(work, vaswani)
    stage("model and data", t)

    t = time.monotonic()
    policy = work / "smollm2_warmed"
    done = policy / "warmup.json"
    if done.is_file() and not settings_changed(json.loads(done.read_text()), settings):
        say(f"warm-up: reusing {policy} ({done})")
        warmup = json.loads(done.read_text())
    else:
        shutil.rmtree(policy, ignore_errors=True)
        shutil.copytree(base_model, policy)
        say("warm-up: the base model's own plain-prompt queries, taught inside the answer format")
        warmup = warm_up_with_own_queries(policy, task / "train.parquet", PROMPT_FORMAT, every=settings.warmup_every,
                                          steps=settings.warmup_steps, lr=settings.warmup_lr,
                                          sampling=Sampling(n=1, temperature=0.8, top_p=0.95, seed=settings.seed),
                                          threads=os.cpu_count() or 2, log_path=work / "warmup_answers.jsonl")
        done.write_text(json.dumps(warmup, indent=2) + "\n")
    stage("warm-up", t)

    t = time.monotonic()
    say(f"GRPO: {settings.steps} steps")
    run_dir = work / "runs" / "grpo"
    shutil.rmtree(run_dir, ignore_errors=True)
    sizes = CpuSizes(train_batch_size=settings.batch, rollout_n=settings.rollouts, max_prompt_length=512,
                     max_response_length=settings.response_length, val_max_samples=-1, steps=settings.steps,
                     val_before_train=True, test_freq=settings.val_every, save_freq=settings.val_every)
    trainer_run(policy, run_dir, work, sizes, settings)
    stage("GRPO", t)

    t = time.monotonic()
    models = {"untrained": base_model, "warmed_up": policy, "trained": trained_checkpoint(run_dir, settings.steps)}
    command = evaluate_command(task, models, work / "eval", settings)
    say("held-out evaluation: " + " ".join(command))
    (work / "eval").mkdir(parents=True, exist_ok=True)
    with (work / "eval" / "evaluate.log").open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"verl_rec.evaluate failed (exit {code}): {work / 'eval' / 'evaluate.log'}")
    stage("evaluation", t)
    return {"collection_query_val_ndcg@10": collection_query_ndcg(task), "format_warmup": warmup,
            "evaluate_command": " ".join(command[1:]).replace(str(work), "<work>"), "stage_seconds": stages,
            "wall_seconds": time.monotonic() - started, "load_average_start": load_start,
            "load_average_end": os.getloadavg()}
