"""learning.json from the runs: per system and seed, held-out NDCG@10 on seen and unseen phrasings
against the raw request and the terse query, with paired bootstrap intervals and the spread between seeds."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.learn.runs import VALIDATION_DIR, run_name
from bench.learn.scoring import Split, dump_scores, final_query, searched_queries
from bench.learn.settings import MODEL_NAME, RECIPES, SPLITS, Settings
from verl_rec.devkit.bootstrap import paired_bootstrap
from verl_rec.devkit.heldout import mean

#: veRL's per-stage timings worth reporting (timing_s/<name>, seconds per step)
STAGES = ("gen", "reward", "old_log_prob", "adv", "update_actor", "update_weights", "testing", "step")


def gap_closed(trained: float, raw: float, terse: float) -> float | None:
    """Share of the raw -> terse-query gap that the trained policy closed (1: as good as the terse query)."""
    return None if abs(terse - raw) < 1e-12 else (trained - raw) / (terse - raw)


def curve(run: dict[str, Any], dumps: dict[int, dict[str, dict[str, dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Per step: training reward and rollout NDCG@10, seconds; at validations, NDCG@10 per split."""
    rows = []
    for step in sorted({int(s) for s in run["metrics"]} | set(dumps)):
        metrics = run["metrics"].get(str(step), {})
        row: dict[str, Any] = {"step": step, "train_reward": metrics.get("critic/score/mean"),
                               "train_ndcg@10": metrics.get("train-aux/ndcg@10/mean"),
                               "seconds": metrics.get("timing_s/step")}
        for split, scores in dumps.get(step, {}).items():
            row[f"val_{split}_ndcg@10"] = mean({k: v["ndcg"] for k, v in scores.items()})
            row[f"val_{split}_format_ok"] = mean({k: v["format_ok"] for k, v in scores.items()})
        rows.append(row)
    return rows


def stage_seconds(run: dict[str, Any]) -> dict[str, float]:
    """Mean seconds per training step of each stage veRL times (validation steps excluded)."""
    steps = [m for m in run["metrics"].values() if "timing_s/step" in m]
    return {name: statistics.fmean(m[f"timing_s/{name}"] for m in steps if f"timing_s/{name}" in m)
            for name in STAGES if any(f"timing_s/{name}" in m for m in steps)}


def examples(split: Split, first: dict[str, dict[str, Any]], last: dict[str, dict[str, Any]],
             n: int = 10) -> list[dict[str, Any]]:
    """The first ``n`` requests of a split: the raw request, and the untrained and trained answers, NDCG@10 each."""
    return [{"request": r.query, "raw_ndcg@10": split.raw[r.record_id],
             "untrained_query": final_query(first[r.record_id]["output"]), "untrained_ndcg@10": first[r.record_id]["ndcg"],
             "trained_query": final_query(last[r.record_id]["output"]), "trained_ndcg@10": last[r.record_id]["ndcg"]}
            for r in split.records[:n]]


def episodes(split: Split, last: dict[str, dict[str, Any]], n: int = 5) -> list[dict[str, Any]]:
    """What the trained agent searched for, then answered, in the first ``n`` episodes of a split."""
    return [{"request": r.query, "searches": searched_queries(last[r.record_id]["output"]),
             "answer": final_query(last[r.record_id]["output"]), "ndcg@10": last[r.record_id]["ndcg"]}
            for r in split.records[:n]]


def run_report(run: dict[str, Any], run_dir: Path, splits: dict[str, Split], settings: Settings) -> dict[str, Any]:
    """One run: per split, the untrained and the trained policy against the raw request and the terse query."""
    dumps = {int(p.stem): dump_scores(p, splits) for p in sorted((run_dir / VALIDATION_DIR).glob("*.jsonl"))}
    if 0 not in dumps or settings.steps not in dumps:
        raise SystemExit(f"{run_dir / VALIDATION_DIR}: needs the dumps of step 0 and step {settings.steps}, "
                         f"has {sorted(dumps)}: run python -m bench.learn without --report-only")
    first, last = dumps[0], dumps[settings.steps]
    report: dict[str, Any] = {"seed": run["seed"], "recipe": run["recipe"], "seconds": run["seconds"],
                              "checkpoint": run["checkpoint"], "stage_seconds_per_step": stage_seconds(run)}
    for name, split in splits.items():
        untrained = {k: v["ndcg"] for k, v in first[name].items()}
        trained = {k: v["ndcg"] for k, v in last[name].items()}
        report[name] = {
            "raw_query_val_ndcg@10": mean(split.raw),
            "untrained_val_ndcg@10": mean(untrained),
            "trained_val_ndcg@10": mean(trained),
            "trained_minus_raw": paired_bootstrap(trained, split.raw, settings.bootstrap),
            "trained_minus_untrained": paired_bootstrap(trained, untrained, settings.bootstrap),
            "gap_closed": gap_closed(mean(trained), mean(split.raw), mean(split.terse)),
            "untrained_format_ok": mean({k: v["format_ok"] for k, v in first[name].items()}),
            "trained_format_ok": mean({k: v["format_ok"] for k, v in last[name].items()}),
            "untrained_search_calls": mean({k: v["calls"] for k, v in first[name].items()}),
            "trained_search_calls": mean({k: v["calls"] for k, v in last[name].items()}),
            "per_query_trained": trained,
        }
        # a diagnostic, not a system: the gain where the trained answer is well formed, and what the malformed ones cost
        well_formed = [k for k, v in last[name].items() if v["format_ok"] > 0]
        report[name]["trained_malformed"] = len(trained) - len(well_formed)
        report[name]["raw_ndcg@10_lost_to_malformed"] = sum(split.raw[k] for k in trained if k not in well_formed) / len(trained)
        if well_formed:
            report[name]["trained_minus_raw_well_formed"] = paired_bootstrap(
                {k: trained[k] for k in well_formed}, {k: split.raw[k] for k in well_formed}, settings.bootstrap)
    report["examples_unseen"] = examples(splits["unseen"], first["unseen"], last["unseen"])
    report["episodes_unseen"] = episodes(splits["unseen"], last["unseen"])
    report["curve"] = curve(run, dumps)
    return report


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}


def build_report(work: Path, runs: dict[str, dict[int, dict[str, Any]]], splits: dict[str, Split],
                 settings: Settings, wall_seconds: float | None, command: str = "python -m bench.learn") -> dict[str, Any]:
    """learning.json: the references, every run, the spread between seeds, the agent against the rewrite."""
    systems: dict[str, Any] = {}
    for system, by_seed in runs.items():
        reports = {f"seed{seed}": run_report(run, work / "runs" / run_name(system, seed), splits, settings)
                   for seed, run in sorted(by_seed.items())}
        systems[system] = {"recipe": RECIPES[system], "seeds": reports,
                           "between_seeds": {name: spread([r[name]["trained_val_ndcg@10"] for r in reports.values()])
                                             for name in splits}}
    comparison = {}
    if {"rewrite", "agent"} <= set(systems):
        for seed in sorted(set(systems["rewrite"]["seeds"]) & set(systems["agent"]["seeds"])):
            comparison[seed] = {name: paired_bootstrap(systems["agent"]["seeds"][seed][name]["per_query_trained"],
                                                       systems["rewrite"]["seeds"][seed][name]["per_query_trained"],
                                                       settings.bootstrap) for name in splits}
    return {
        "model": MODEL_NAME,
        "task": "vaswani (bundled): 53 training queries x 8 request templates; 40 held-out queries, each in one "
                "training template (seen) and in one of 8 templates never used in training (unseen)",
        "command": command,
        "wall_seconds": wall_seconds,
        "runs_seconds": sum(run["seconds"] for by_seed in runs.values() for run in by_seed.values()),
        "settings": asdict(settings),
        "val_queries": len(splits["seen"].records),
        "data_sources": SPLITS,
        "raw_query_val_ndcg@10": {name: mean(s.raw) for name, s in splits.items()},
        "collection_query_val_ndcg@10": {name: mean(s.terse) for name, s in splits.items()},
        "systems": systems,
        "agent_minus_rewrite": comparison,
    }


def archive_runs(work: Path, runs: dict[str, dict[int, Any]], folder: Path) -> None:
    """The evidence next to the report: per run, its run.json, main_ppo's log and every validation dump, gzipped."""
    import gzip
    import shutil

    from bench.learn.runs import DONE_FILE

    shutil.rmtree(folder, ignore_errors=True)
    for system, by_seed in runs.items():
        for seed in by_seed:
            run_dir, target = work / "runs" / run_name(system, seed), folder / run_name(system, seed)
            target.mkdir(parents=True)
            shutil.copy2(run_dir / DONE_FILE, target / DONE_FILE)
            for source in [run_dir / "main_ppo.log", *sorted((run_dir / VALIDATION_DIR).glob("*.jsonl"))]:
                name = source.name if source.parent == run_dir else f"validation_step{source.name}"
                # mtime 0: rebuilding the report from the same runs writes the same bytes
                with source.open("rb") as f, gzip.GzipFile(target / f"{name}.gz", "wb", mtime=0) as g:
                    shutil.copyfileobj(f, g)


def write_report(report: dict[str, Any], out: Path, work: Path, runs: dict[str, dict[int, Any]]) -> None:
    """learning.json, learning.md (the tables), learning.png (the curves) and learning_runs/ (the evidence)."""
    from bench.learn.plot import plot
    from bench.learn.tables import markdown

    out.mkdir(parents=True, exist_ok=True)
    (out / "learning.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "learning.md").write_text(markdown(report))
    plot(report, out / "learning.png")
    archive_runs(work, runs, out / "learning_runs")
