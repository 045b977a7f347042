"""Run stock ``python -m verl.trainer.main_ppo`` on the CPU and report what happened.

Reusable by any test that needs a real trainer run (e.g. a custom reward manager):
``run_tiny_grpo`` is the one-call version; ``tiny_grpo_overrides`` gives a minimal
GRPO job for the tiny model, ``run_main_ppo`` runs it in a subprocess and returns
exit code, wall time, peak memory of the whole process tree (driver + Ray + workers),
the per-step metrics printed by veRL's console logger, and any process it left behind.

Leftover detection only ever looks at processes this run started: every descendant
seen while it ran, plus anything whose command line names the run's private Ray
temp dir. Other Ray clusters on the machine are never touched.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from verl_rec.cpu_backend.overrides import cpu_env, cpu_overrides
from verl_rec.devkit.tiny_data import write_tiny_grpo_dataset

_STEP_LINE = re.compile(r"step:(\d+) - (.*)$")
_NUMPY_SCALAR = re.compile(r"^np\.\w+\((.*)\)$")


@dataclass
class RunResult:
    """Outcome of one ``main_ppo`` run."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int
    log_path: Path
    timed_out: bool = False
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    leftover: list[str] = field(default_factory=list)  # "pid name" of processes that outlived the run

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, n_chars: int = 6000) -> str:
        return self.output[-n_chars:]


def tiny_grpo_overrides(
    model_dir: Path | str,
    train_file: Path | str,
    val_file: Path | str,
    reward_path: Path | str,
    out_dir: Path | str,
    steps: int = 2,
    n: int = 4,
    batch_size: int = 2,
    max_prompt_length: int = 96,
    max_response_length: int = 16,
    lr: float = 1e-2,
    reward_name: str = "compute_score",
) -> list[str]:
    """A minimal GRPO job (KL loss on, so the ref model runs too) with validation after the last step.

    The learning rate is large on purpose: the policy moves visibly in one step, so a
    rollout that missed the weight update shows up in ``training/rollout_probs_diff_*``.
    """
    micro = batch_size * n
    actor = "actor_rollout_ref.actor"
    return [
        "algorithm.adv_estimator=grpo",
        f"data.train_files={train_file}",
        f"data.val_files={val_file}",
        f"data.train_batch_size={batch_size}",
        f"data.max_prompt_length={max_prompt_length}",
        f"data.max_response_length={max_response_length}",
        f"actor_rollout_ref.model.path={model_dir}",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        f"{actor}.ppo_mini_batch_size={batch_size}",
        f"{actor}.ppo_micro_batch_size_per_gpu={micro}",
        f"{actor}.optim.lr={lr}",
        f"{actor}.use_kl_loss=True",
        f"{actor}.kl_loss_coef=0.001",
        f"actor_rollout_ref.rollout.n={n}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"reward.custom_reward_function.path={reward_path}",
        f"reward.custom_reward_function.name={reward_name}",
        f"trainer.total_training_steps={steps}",
        "trainer.total_epochs=100",
        "trainer.val_before_train=False",
        f"trainer.test_freq={steps}",
        "trainer.save_freq=-1",
        "trainer.project_name=verl_rec_cpu",
        "trainer.experiment_name=tiny_grpo",
        f"trainer.default_local_dir={Path(out_dir) / 'checkpoints'}",
    ]


def parse_step_metrics(text: str) -> dict[int, dict[str, float]]:
    """``step:N - key:value - ...`` lines of veRL's console logger -> {N: {key: value}}."""
    steps: dict[int, dict[str, float]] = {}
    for line in text.splitlines():
        match = _STEP_LINE.search(line)
        if not match:
            continue
        metrics = steps.setdefault(int(match.group(1)), {})
        for item in match.group(2).split(" - "):
            key, sep, value = item.rpartition(":")
            if not sep:
                continue
            value = _NUMPY_SCALAR.sub(r"\1", value.strip())  # np.float64(0.25) -> 0.25
            try:
                metrics[key.strip()] = float(ast.literal_eval(value))
            except (ValueError, SyntaxError, TypeError):
                continue
    return steps


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(procs: Sequence[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _leftovers(seen: dict[int, psutil.Process], ray_tmp: str, grace_s: float) -> list[psutil.Process]:
    """Processes of this run alive ``grace_s`` after it exited: seen descendants, or users of its Ray temp dir.

    Ray tears its actors down asynchronously after the driver exits (docs/performance.md, "CPU settings"),
    so only what outlives the grace period counts.
    """
    deadline = time.monotonic() + grace_s
    while True:
        alive = [p for p in seen.values() if _alive(p)]
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if p.pid not in seen and ray_tmp in " ".join(p.info["cmdline"] or []) and _alive(p):
                    alive.append(p)
            except psutil.Error:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {' '.join(p.cmdline())[:120]}"
    except psutil.Error:
        return str(p.pid)


def run_main_ppo(
    overrides: Sequence[str],
    log_path: Path | str,
    timeout_s: float = 600,
    extra_env: dict[str, str] | None = None,
    sample_every_s: float = 0.5,
    shutdown_grace_s: float = 30.0,
    config_args: Sequence[str] = (),
) -> RunResult:
    """Run ``main_ppo`` with ``cpu_overrides() + overrides``; always leaves no Ray process behind.

    Ray gets a private temp dir (``_temp_dir``) so this run's processes are recognisable.
    Any process of this run still alive after exit is recorded in ``leftover`` and then
    terminated (by pid), so a failing test does not poison the next one.
    """
    log_path = Path(log_path)
    ray_tmp = tempfile.mkdtemp(prefix="vrc_", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    cmd = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        *config_args,  # --config-dir/--config-name must precede the overrides (Hydra's argparse)
        *cpu_overrides(),
        f"+ray_kwargs.ray_init._temp_dir={ray_tmp}",
        *overrides,
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # never join someone else's cluster
    env.update(cpu_env())
    env.update(extra_env or {})

    seen: dict[int, psutil.Process] = {}
    peak = 0
    start = time.monotonic()
    with open(log_path, "w") as log:
        log.write(" ".join(cmd) + "\n\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        root = psutil.Process(proc.pid)
        timed_out = False
        try:
            while proc.poll() is None:
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                    break
                procs = _tree(root)
                seen.update({p.pid: p for p in procs if p.pid != proc.pid})
                peak = max(peak, _rss(procs))
                time.sleep(sample_every_s)
        finally:
            if proc.poll() is None:  # timeout or interrupted: Ray's processes are handled below
                proc.kill()
            returncode = proc.wait()
    wall = time.monotonic() - start

    leftover = _leftovers(seen, ray_tmp, grace_s=shutdown_grace_s)
    described = [_describe(p) for p in leftover]
    for p in leftover:
        try:
            p.kill()
        except psutil.Error:
            pass
    shutil.rmtree(ray_tmp, ignore_errors=True)
    return RunResult(
        returncode=returncode,
        wall_s=wall,
        peak_rss_bytes=peak,
        log_path=log_path,
        timed_out=timed_out,
        metrics=parse_step_metrics(log_path.read_text(errors="replace")),
        leftover=described,
    )


def run_tiny_grpo(
    work_dir: Path | str,
    model_dir: Path | str,
    reward_path: Path | str,
    extra_overrides: Sequence[str] = (),
    timeout_s: float = 600,
    **job: Any,
) -> RunResult:
    """Tiny dataset + ``tiny_grpo_overrides`` + ``extra_overrides`` (win on conflict), run on CPU.

    ``model_dir`` comes from ``verl_rec.devkit.tiny_model.build_tiny_model``;
    ``job`` forwards ``steps``, ``n``, ``batch_size``, ... to ``tiny_grpo_overrides``.
    """
    work = Path(work_dir)
    train, val = write_tiny_grpo_dataset(work / "data")
    overrides = tiny_grpo_overrides(model_dir, train, val, Path(reward_path).resolve(), work, **job)
    return run_main_ppo([*overrides, *extra_overrides], work / "main_ppo.log", timeout_s=timeout_s)
