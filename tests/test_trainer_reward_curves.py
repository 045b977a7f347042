"""Training curves of the reward's parts, through stock ``main_ppo`` on CPU.

The ESCI + BM25 recipe (Lucene through the shared retrieval service, tiny format-warmed model,
3 GRPO steps) logs ``train-aux/<key>/mean`` for every key the scorer returns, in every training
step. The retrieval service is killed during a step: that step's ``retrieval_error`` mean is
above 0, the other steps' are 0, and the run finishes (Ray restarts the service). Only the
requests in flight at the kill fail (one Ray call per reward worker); those its client queued
meanwhile go to the restarted service, so the step's mean is well below 1.

How the kill lands inside a step: when step N's metrics line appears, the service process is
frozen (SIGSTOP), so the next step's reward calls reach it and wait, in flight; once no new
step has been logged for ``HOLD_S``, it is killed (SIGKILL) and those calls fail. Were a step
quick enough to finish before the freeze, the freeze would hold the step after it instead: the
test reads which step was in progress at the kill.
"""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from verl_rec.recipes import RECIPES_DIR as RECIPES

pytestmark = pytest.mark.slow

RECIPE = "esci_bm25"
STEPS = 3
HOLD_S = 8.0  # longer than a step's rollout on 2 cores: the frozen step's first reward calls are in flight
RUN_TAG_ENV = "VERL_REC_TEST_RUN_TAG"
_STEP_LINE = re.compile(r"step:(\d+) - ")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from helpers_catalog import build_catalog_task
    from verl_rec.data_preprocess import build_index

    task_dir = build_catalog_task(tmp_path_factory.mktemp("catalog"), n_products=400, n_queries=120, val_size=6)
    assert build_index.main(["--corpus", str(task_dir / "corpus.jsonl"), "--backend", "lucene",
                             "--index", str(task_dir / "index_lucene"), "--threads", "1", "--heap", "512m",
                             "--quiet"]) == 0
    return task_dir


@pytest.fixture(scope="module")
def format_model(tmp_path_factory, catalog):
    from verl_rec.devkit.format_warmup import warm_up_format
    from verl_rec.devkit.tiny_model import build_tiny_model

    return warm_up_format(build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0), catalog / "train.parquet",
                          "paper_sparse", steps=250)  # the recipe's prompt format


def scorer_keys() -> set[str]:
    """The keys the recipe's scorer returns per sample (asked of the scorer, not listed here)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from verl_rec.reward.reward_kwargs import RewardSettings
    from verl_rec.reward.scorer import ServiceScorer

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        cfg = compose(config_name=RECIPE, overrides=["hydra.searchpath=[pkg://verl.trainer.config]"])
    kwargs = OmegaConf.to_container(cfg.reward.reward_kwargs, resolve=True)

    class NoHits:
        async def target_positions(self, query, k, targets):
            return {}

    scorer = ServiceScorer(RewardSettings.from_mapping(kwargs), service=NoHits())
    result = asyncio.run(scorer.score_text('<think>x</think>\n<answer>{"query": "red shoe"}</answer>', '{"p1": 1}',
                                           cfg.data.prompt_format))
    return set(result.extra)


class ServiceKiller(threading.Thread):
    """Freezes the retrieval service when step ``after_step`` is logged, kills it once no step has
    been logged for ``hold_s``; records the step that was in progress at the kill."""

    def __init__(self, log_path: Path, after_step: int, hold_s: float, run_tag: str, timeout_s: float = 600) -> None:
        super().__init__(daemon=True)
        self.log_path, self.after_step, self.hold_s, self.timeout_s = log_path, after_step, hold_s, timeout_s
        self.run_tag = run_tag  # the value of RUN_TAG_ENV in this run's environment: Ray workers inherit it
        self.killed_pid: int | None = None
        self.step_in_progress: int | None = None
        self.events: list[str] = []
        self._done = threading.Event()
        self.started_at = time.time()

    def stop(self) -> None:
        self._done.set()

    def _last_step(self) -> int:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return max((int(m) for m in _STEP_LINE.findall(text)), default=0)

    def _service_process(self, wait_s: float = 30.0) -> tuple[psutil.Process | None, list[str]]:
        """The service's actor process, searched among ALL processes: Ray's workers need not stay
        descendants of this one (a worker whose parent exited is re-parented). Also returns the
        ``ray::`` process titles seen, for the failure message. Only processes started after this
        thread and carrying this run's tag count: neither a service left by an earlier run nor
        that of a trainer test running at the same time (scripts/test.sh runs two files at once)."""
        deadline, titles = time.monotonic() + wait_s, []
        while True:
            titles = []
            for proc in psutil.process_iter(["cmdline", "create_time"]):
                if (proc.info.get("create_time") or 0) < self.started_at:
                    continue
                title = " ".join(proc.info.get("cmdline") or [])
                if title.startswith("ray::"):
                    titles.append(title.strip()[:60])
                if title.startswith("ray::RetrievalService") and self._tagged(proc):
                    return proc, titles
            if time.monotonic() > deadline:
                return None, titles
            time.sleep(0.2)

    def _tagged(self, proc: psutil.Process) -> bool:
        try:
            return proc.environ().get(RUN_TAG_ENV) == self.run_tag
        except psutil.Error:
            return False

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self._last_step() < self.after_step:
            if self._done.wait(0.05) or time.monotonic() > deadline:
                return
        service, titles = self._service_process()
        if service is None:
            self.events.append(f"no retrieval service process found among the ray processes {titles}")
            return
        service.send_signal(signal.SIGSTOP)
        self.events.append(f"froze pid {service.pid} after step {self._last_step()}")
        last, quiet_since = self._last_step(), time.monotonic()
        while time.monotonic() - quiet_since < self.hold_s:
            if self._done.wait(0.2):  # the run ended first: nothing was in flight when frozen
                self._kill(service)
                return
            if self._last_step() != last:  # a step finished while frozen: its calls had been answered before
                last, quiet_since = self._last_step(), time.monotonic()
        self.step_in_progress = last + 1
        if self._kill(service):
            self.killed_pid = service.pid
            self.events.append(f"killed pid {service.pid} during step {self.step_in_progress}")

    def _kill(self, service: psutil.Process) -> bool:
        try:
            service.send_signal(signal.SIGKILL)
            return True
        except psutil.Error as exc:
            self.events.append(f"could not kill pid {service.pid}: {exc!r}")
            return False


def test_reward_parts_are_training_curves_and_a_killed_service_shows_as_retrieval_errors(catalog, format_model,
                                                                                          tmp_path):
    from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
    from verl_rec.devkit.runner import run_main_ppo
    from verl_rec.integration.reward_curves import metric_name

    keys = scorer_keys()
    assert {"format_ok", "retrieval_error", "query_words", "ndcg@10"} <= keys, keys
    log_path = tmp_path / "main_ppo.log"
    run_tag = uuid.uuid4().hex
    killer = ServiceKiller(log_path, after_step=1, hold_s=HOLD_S, run_tag=run_tag)
    killer.start()
    try:
        result = run_main_ppo([
            *recipe_cpu_overrides(format_model, tmp_path, "lucene",
                                  CpuSizes(train_batch_size=4, steps=STEPS, test_freq=-1)),  # -1: no validation
            f"data.train_files={catalog / 'train.parquet'}", f"data.val_files={catalog / 'val.parquet'}",
            f"reward.reward_kwargs.retrieval.index_path={catalog / 'index_lucene'}",
        ], log_path, timeout_s=900, config_args=[f"--config-dir={RECIPES}", f"--config-name={RECIPE}"],
            extra_env={RUN_TAG_ENV: run_tag})
    finally:
        killer.stop()
        killer.join(timeout=30)
    print(f"\n[trainer] exit {result.returncode} in {result.wall_s:.0f}s; killer: {killer.events}")
    curves = {step: {k: round(v, 3) for k, v in m.items() if k.startswith("train-aux/")}
              for step, m in sorted(result.metrics.items())}
    print("[trainer] train-aux:", curves)
    assert result.returncode == 0, result.tail()
    assert set(result.metrics) == set(range(1, STEPS + 1)), result.tail()
    assert result.leftover == [], f"processes left behind: {result.leftover}"

    for step, metrics in result.metrics.items():  # every key the scorer returns is a training curve
        missing = {k for k in keys if metric_name(k) not in metrics}
        assert not missing, (step, missing, sorted(metrics))
        assert 0.0 <= metrics[metric_name("format_ok")] <= 1.0

    assert killer.killed_pid is not None, killer.events
    hit = killer.step_in_progress
    errors = {step: result.metrics[step][metric_name("retrieval_error")] for step in result.metrics}
    assert errors[hit] > 0, (hit, errors)
    assert all(errors[step] == 0 for step in errors if step < hit), errors
    assert all(errors[step] == 0 for step in errors if step > hit), errors  # the restarted service answers
    assert "retrieval failed" in result.output  # and the failures were logged where they happened
