"""learning.json, learning.md and learning.png from the runs' logs and the evaluation's rows, and the archived evidence."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.learn.settings import FORMAT_OK, MODEL_NAME, NDCG, PROMPT_FORMAT, RECIPE, SYSTEMS, Settings
from bench.learn.statistics import mean_interval, paired_bootstrap, read_per_query
from verl_rec.devkit.runner import parse_step_metrics
from verl_rec.devkit.val_metrics import data_source_counts, validation_mean


def rollout_stats(folder: Path) -> dict[int, dict[str, float]]:
    """Per training step: the share of well-formed rollouts and their mean query words."""
    from verl_rec.reward.parsing import parse_output
    from verl_rec.tasks.formats import format_spec

    spec = format_spec(PROMPT_FORMAT)
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
    """Per step: train reward, format_ok and query words of the rollouts, greedy validation
    NDCG@10 and format_ok over the held-out queries, seconds."""
    stats = rollout_stats(rollouts)
    return [{
        "step": step,
        "train_reward": metrics.get("critic/score/mean"),
        "format_ok": stats.get(step, {}).get("format_ok"),
        "mean_query_words": stats.get(step, {}).get("mean_query_words"),
        "val_ndcg@10": validation_mean(metrics, NDCG, counts),
        "val_format_ok": validation_mean(metrics, FORMAT_OK, counts),
        "seconds": metrics.get("timing_s/step"),
        "generation_seconds": metrics.get("timing_s/gen"),
    } for step, metrics in sorted(metrics_by_step.items())]


def examples(eval_dir: Path, per_query: dict[str, dict[str, float]], n: int = 10) -> list[dict[str, Any]]:
    """The first ``n`` held-out requests: the warmed-up and trained greedy answers, NDCG@10 each."""
    from verl_rec.evaluation.inputs import read_outputs
    from verl_rec.reward.parsing import parse_output
    from verl_rec.tasks.formats import format_spec
    from verl_rec.tasks.record_files import read_records

    spec = format_spec(PROMPT_FORMAT)
    outputs = {name: read_outputs(eval_dir / f"outputs_{name}.jsonl") for name in ("warmed_up", "trained")}
    rows = []
    for record in read_records(eval_dir.parent / "vaswani" / "test.parquet")[:n]:
        row = {"record_id": record.record_id, "request": record.query,
               "raw_ndcg@10": per_query["raw"][record.record_id]}
        for name, texts in outputs.items():
            parsed = parse_output(texts.get(record.record_id, ""), spec)
            row[f"{name}_query"] = parsed.answer if parsed.ok else None
            row[f"{name}_ndcg@10"] = per_query[name][record.record_id]
        rows.append(row)
    return rows


def reproduction(validated: list[dict[str, Any]], table: dict[str, Any]) -> dict[str, float | None]:
    """veRL's NDCG@10 at the first and last validation next to the evaluate CLI's greedy numbers
    for the same weights (warmed-up, trained): the CLI reproduces the run when they agree."""
    if not validated:
        return {}
    rows = {}
    for name, verl in (("warmed_up", validated[0]["val_ndcg@10"]), ("trained", validated[-1]["val_ndcg@10"])):
        cli = table[name]["greedy"]["mean"]
        rows.update({f"{name}_verl_validation": verl, f"{name}_evaluate_cli": cli, f"{name}_abs_difference": abs(verl - cli)})
    return rows


def run_metrics(work: Path, name: str) -> dict[int, dict[str, float]]:
    log = work / "runs" / name / "main_ppo.log"
    return parse_step_metrics(log.read_text(errors="replace")) if log.is_file() else {}


def build_report(work: Path, settings: Settings, state: dict[str, Any]) -> dict[str, Any]:
    """learning.json from the runs' logs, the evaluation's per-query rows and ``state``."""
    task = work / "vaswani"
    counts = data_source_counts(task / "test.parquet")
    steps = step_rows(run_metrics(work, "grpo"), work / "runs" / "grpo" / "rollouts", counts)
    validated = [s for s in steps if s["val_ndcg@10"] is not None]
    timed = [s for s in steps if s["seconds"] is not None]
    eval_dir = work / "eval"
    per_query = read_per_query(eval_dir / "per_query.csv")
    n, seed = settings.bootstrap, settings.seed
    table = {system: {"greedy": mean_interval(per_query[system], n, seed),
                      **({"sampled": mean_interval(per_query[f"{system}@sampled"], n, seed)}
                         if f"{system}@sampled" in per_query else {})} for system in SYSTEMS}
    compare = {f"{a}_minus_{b}{tag}": paired_bootstrap(per_query[a + tag], per_query[b + ("" if b == "raw" else tag)], n, seed)
               for tag in ("", "@sampled") for a, b in (("trained", "raw"), ("trained", "warmed_up"), ("warmed_up", "raw"))}
    manifest = json.loads((task / "manifest.json").read_text())
    return {
        "model": MODEL_NAME,
        "recipe": RECIPE,
        "prompt_format": PROMPT_FORMAT,
        "task": "Vaswani (11,429 abstracts, BM25 by Lucene); verbose natural-language requests around the "
                "collection's queries (verl_rec.builders.requests); 53 train / 40 held-out queries, split by seed 0",
        "train_query_ids": manifest["notes"]["train_query_ids"],
        "heldout_query_ids": manifest["notes"]["heldout_query_ids"],
        "settings": asdict(settings),
        "val_queries": sum(counts.values()),
        # the run's own numbers: veRL's greedy validation on the held-out queries
        "raw_query_val_ndcg@10": table["raw"]["greedy"]["mean"],
        "collection_query_val_ndcg@10": state["collection_query_val_ndcg@10"],
        "warmed_up_val_ndcg@10": validated[0]["val_ndcg@10"] if validated else None,
        "trained_val_ndcg@10": validated[-1]["val_ndcg@10"] if validated else None,
        "trained_at_step": validated[-1]["step"] if validated else None,
        "interval": {"method": f"paired bootstrap over the {sum(counts.values())} held-out queries, {n} resamples, "
                               "95% percentile interval (verl_rec.evaluate's per-query rows)",
                     **compare},
        "evaluate_cli": {"command": state["evaluate_command"], "table": table,
                         # the CLI's greedy answers against veRL's first and last validation
                         "reproduces_final_validation": reproduction(validated, table)},
        "format_warmup": state["format_warmup"],
        "examples": examples(eval_dir, per_query),
        # per held-out query, greedy NDCG@10: the wins and losses behind the paired intervals
        "per_query_ndcg@10": {q: {system: round(per_query[system][q], 4) for system in SYSTEMS}
                              for q in sorted(per_query["raw"])},
        "steps": steps,
        "seconds_per_step": sum(s["seconds"] for s in timed) / len(timed) if timed else None,
        "generation_seconds_per_step": (sum(s["generation_seconds"] or 0 for s in timed) / len(timed)) if timed else None,
        "logs": {"grpo": str(work / "runs" / "grpo" / "main_ppo.log"), "evaluate": str(eval_dir / "evaluate.log"),
                 "warmup_answers": str(work / "warmup_answers.jsonl"),
                 "archived_copy": "learning_run/ next to this file: main_ppo.log.gz, outputs.tar.gz "
                                  "(evaluation outputs, training rollouts, warm-up answers), per_query.csv"},
        **{k: state.get(k) for k in ("stage_seconds", "wall_seconds", "load_average_start", "load_average_end")},
        "cpu_count": os.cpu_count(),
    }


def example_query(example: dict[str, Any], name: str) -> str:
    text = example[f"{name}_query"]
    return f"{'(malformed)' if text is None else text.replace('|', '/')} ({example[f'{name}_ndcg@10']:.2f})"


def markdown(report: dict[str, Any]) -> str:
    """learning.md: the held-out table, the paired intervals and the examples, for docs/learning.md."""
    def cell(stats: dict[str, float] | None) -> str:
        return f"{stats['mean']:.3f} [{stats['ci95_low']:.3f}, {stats['ci95_high']:.3f}]" if stats else "-"

    table = report["evaluate_cli"]["table"]
    lines = [f"| held-out NDCG@10 ({report['val_queries']} queries), mean [95% bootstrap] | greedy | "
             f"sampled ({report['settings']['eval_samples']} per query) |",
             "|---|---|---|"]
    names = {"raw": "raw request (BM25 on what the user wrote)", "untrained": "SmolLM2, untrained",
             "warmed_up": "SmolLM2, format warm-up", "trained": f"SmolLM2, after {report['trained_at_step']} GRPO steps"}
    lines += [f"| {names[s]} | {cell(table[s]['greedy'])} | {cell(table[s].get('sampled'))} |" for s in SYSTEMS]
    lines += ["", "| paired difference over queries | mean [95% bootstrap] | wins / losses / ties |", "|---|---|---|"]
    for key, d in report["interval"].items():
        if isinstance(d, dict):
            lines.append(f"| {key.replace('_minus_', ' - ')} | {d['mean_difference']:+.3f} "
                         f"[{d['ci95_low']:+.3f}, {d['ci95_high']:+.3f}] | {d['wins']} / {d['losses']} / {d['ties']} |")
    lines += ["", "| request | warmed-up query (NDCG@10) | trained query (NDCG@10) | raw |", "|---|---|---|---|"]
    for e in report["examples"]:
        lines.append(f"| {e['request']} | {example_query(e, 'warmed_up')} | {example_query(e, 'trained')} | "
                     f"{e['raw_ndcg@10']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["steps"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    val = [(s["step"], s["val_ndcg@10"]) for s in steps if s["val_ndcg@10"] is not None]
    top.plot([s for s, _ in val], [v for _, v in val], "o-", label="trained policy (greedy, held-out)")
    top.axhline(report["raw_query_val_ndcg@10"], color="grey", ls="--", label="raw request")
    top.axhline(report["collection_query_val_ndcg@10"], color="green", ls=":", label="the collection's own query")
    top.set_ylabel("held-out NDCG@10")
    top.legend(fontsize=8)
    train = [(s["step"], s["train_reward"]) for s in steps if s["train_reward"] is not None]
    bottom.plot([s for s, _ in train], [r for _, r in train], ".-", alpha=0.5, label="train reward (per step)")
    window = 8
    smooth = [(train[i][0], sum(r for _, r in train[max(0, i - window + 1):i + 1]) / len(train[max(0, i - window + 1):i + 1]))
              for i in range(len(train))]
    bottom.plot([s for s, _ in smooth], [r for _, r in smooth], "-", label=f"train reward ({window}-step mean)")
    bottom.set_xlabel("GRPO step")
    bottom.set_ylabel("reward (0.1 + NDCG@100)")
    bottom.legend(fontsize=8)
    fig.suptitle("SmolLM2-135M-Instruct, vaswani_bm25 recipe, stock main_ppo on 2 CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def archive_run(work: Path, folder: Path) -> None:
    """A copy of the run's evidence next to learning.json (``--work`` is not in git): main_ppo's log
    (without Ray's thread-count warnings), the evaluation's outputs, per-query rows and log, every
    training rollout, and the warm-up's answers and settings."""
    import gzip
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    log = (work / "runs" / "grpo" / "main_ppo.log").read_text(errors="replace").splitlines(keepends=True)
    kept = "".join(line for line in log if "target_num_threads" not in line).encode()
    with gzip.GzipFile(folder / "main_ppo.log.gz", "wb", mtime=0) as f:  # mtime 0: a rerun changes no bytes
        f.write(kept)
    for name in ("evaluate.log", "per_query.csv", "results.json", "results.md"):
        shutil.copy(work / "eval" / name, folder / name)
    shutil.copy(work / "smollm2_warmed" / "warmup.json", folder / "warmup.json")
    with gzip.GzipFile(folder / "outputs.tar.gz", "wb", mtime=0) as packed, tarfile.open(fileobj=packed, mode="w") as tar:
        for path in [*sorted((work / "eval").glob("outputs_*.jsonl")), work / "runs" / "grpo" / "rollouts",
                     work / "warmup_answers.jsonl"]:
            tar.add(path, arcname=str(path.relative_to(work)))
