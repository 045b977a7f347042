"""``python -m verl_rec.quickstart``: the whole loop on a small bundled example, anywhere.

By default a real LLM learns (:mod:`verl_rec.quickstart_llm`: SmolLM2-135M-Instruct, the
bundled Vaswani collection, the ``quickstart_vaswani`` recipe; about ten minutes on 2 CPU
cores). ``--tiny`` runs the original smoke version below in about three minutes:

1. writes a small product catalog in the ESCI release schema (synthetic, offline);
2. turns it into task records + corpus (the ESCI builder of ``verl_rec.data_preprocess``);
3. indexes the corpus with Lucene (BM25, the paper's engine);
4. CPU mode: builds a tiny local chat model; GPU mode: you pass a real model path;
5. runs the stock ``python -m verl.trainer.main_ppo`` on the packaged ``quickstart`` recipe
   and prints reward and validation NDCG per step.

Everything lands under ``$VERL_REC_DATA/quickstart`` (default ``./data/quickstart``); the
trainer runs there too, so nothing is read from or written to a source checkout. The console
shows only the quickstart's own progress and results; what the engines print (the Java
indexer, JVM warnings, veRL and Ray) goes to the log file, or to the console with ``--verbose``.
Extra arguments are Hydra overrides passed to ``main_ppo``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from verl_rec.builders.esci import EsciOptions, build_esci
from verl_rec.devkit.console import engine_output
from verl_rec.devkit.synthetic_catalog import write_esci_release
from verl_rec.devkit.val_metrics import data_source_counts, validation_mean
from verl_rec.recipes import RECIPES_DIR

FAILURE_TAIL_LINES = 30


def data_root() -> Path:
    return Path(os.environ.get("VERL_REC_DATA", "data")).resolve()


def say(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def prepare(root: Path, log: TextIO | None = None, n_products: int = 2000, n_queries: int = 300) -> Path:
    """Catalog -> records -> Lucene index (each skipped when already built)."""
    from verl_rec.retrieval.lucene.build import build_lucene_index, is_lucene_index

    task_dir = root / "quickstart" / "esci"
    if not (task_dir / "train.parquet").is_file():
        say(f"writing a synthetic catalog ({n_products} products, {n_queries} queries) and its task records")
        with engine_output(log):
            raw = write_esci_release(root / "quickstart" / "raw", n_products=n_products, n_queries=n_queries)
            manifest = build_esci(raw / "shopping_queries_dataset_examples.parquet", task_dir,
                                  products_path=raw / "shopping_queries_dataset_products.parquet",
                                  category_map_path=raw / "product_categories.csv", options=EsciOptions(val_size=16))
        print(manifest.summary(), flush=True)
    if not is_lucene_index(task_dir / "index_lucene"):
        say("indexing the corpus with Lucene (BM25)")
        started = time.perf_counter()
        with engine_output(log):
            build_lucene_index(task_dir / "corpus.jsonl", task_dir / "index_lucene", threads=2, heap="1g", progress=True)
        say(f"Lucene index ready in {time.perf_counter() - started:.0f}s: {task_dir / 'index_lucene'}")
    return task_dir


def prepare_tiny_model(root: Path, log: TextIO | None = None) -> Path:
    """CPU mode's model: built and taught the answer format once, then reused."""
    from verl_rec.devkit.format_warmup import warm_up_format
    from verl_rec.devkit.tiny_model import build_tiny_model

    model_dir = root / "quickstart" / "tiny_model"
    if not (model_dir / "config.json").is_file():
        say("building a tiny local model and teaching it the answer format (CPU, ~1-3 min)")
        with engine_output(log):
            warm_up_format(build_tiny_model(model_dir), root / "quickstart" / "esci" / "train.parquet", steps=250)
    return model_dir


def command(gpu: bool, model_dir: Path | None, overrides: list[str],
            steps: int | None = None) -> tuple[list[str], dict[str, str]]:
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-dir={RECIPES_DIR}", "--config-name=quickstart"]
    if steps is not None:
        overrides = [f"trainer.total_training_steps={steps}", *overrides]
    env = dict(os.environ, VERL_REC_DATA=str(data_root()))
    if not gpu:
        from verl_rec.cpu_backend.overrides import cpu_env, cpu_overrides

        cmd += cpu_overrides() + [f"actor_rollout_ref.model.path={model_dir}", "reward.num_workers=2"]
        env.update(cpu_env())
    return cmd + overrides, env


def _cell(value: float | None) -> str:
    return "      -" if value is None else f"{value:7.4f}"


def show(step: int, metrics: dict[str, float], counts: Mapping[str, int] | None = None) -> None:
    """One short row per step: training reward, and validation reward / NDCG over the validation
    queries (``counts``: rows per data source; without them, the mean over data sources)."""
    def val(suffix: str) -> str:
        return _cell(validation_mean(metrics, suffix, counts))

    print(f"[quickstart] step {step:>3} | train reward {_cell(metrics.get('critic/score/mean'))} | "
          f"val reward {val('/reward/mean@1')} | val NDCG@10 {val('/ndcg@10/mean@1')} | "
          f"val format_ok {val('/format_ok/mean@1')}", flush=True)


def summary(history: dict[int, dict[str, float]], counts: Mapping[str, int] | None = None) -> str | None:
    """The untrained and the trained policy side by side: validation NDCG@10 (and reward, when
    logged) at the first and the last validation."""
    def val(metrics: dict[str, float], suffix: str) -> float | None:
        return validation_mean(metrics, suffix, counts)

    validated = [(step, m) for step, m in sorted(history.items()) if val(m, "/ndcg@10/mean@1") is not None]
    if len(validated) < 2:
        return None
    (first_step, first), (last_step, last) = validated[0], validated[-1]
    line = (f"val NDCG@10 {val(first, '/ndcg@10/mean@1'):.4f} at step {first_step} -> "
            f"{val(last, '/ndcg@10/mean@1'):.4f} at step {last_step}")
    before, after = val(first, "/reward/mean@1"), val(last, "/reward/mean@1")
    if before is not None and after is not None:
        line += f"; val reward {before:.4f} -> {after:.4f}"
    return line


def train(cmd: list[str], env: dict[str, str], cwd: Path, log: TextIO, verbose: bool,
          counts: Mapping[str, int] | None = None,
          row: Callable[[int, dict[str, float]], str | None] | None = None) -> tuple[int, dict[int, dict[str, float]]]:
    """Run main_ppo; every line goes to the log (and to the console with ``verbose``), step rows to
    the console (:func:`show`, or ``row``'s line). Returns the exit code and the per-step metrics."""
    from verl_rec.devkit.runner import parse_step_metrics

    history: dict[int, dict[str, float]] = {}
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        tail = [*tail[-(FAILURE_TAIL_LINES - 1):], line]
        if verbose:
            sys.stdout.write(line)
        for step, metrics in parse_step_metrics(line).items():
            history.setdefault(step, {}).update(metrics)
            if row is None:
                show(step, metrics, counts)
            elif (text := row(step, metrics)) is not None:
                say(text)
    code = proc.wait()
    log.flush()
    if code != 0:
        say(f"the last lines main_ppo printed (exit {code}):")
        sys.stdout.write("".join(tail))
    return code, history


def run_tiny(args: argparse.Namespace, overrides: list[str], root: Path, work_dir: Path, log: TextIO) -> int:
    """``--tiny``: the synthetic catalog, the tiny model, the ``quickstart`` recipe."""
    quiet = None if args.verbose else log
    prepare(root, quiet)
    model_dir = None if args.gpu else prepare_tiny_model(root, quiet)
    cmd, env = command(args.gpu, model_dir, overrides, args.steps)
    say("training: stock main_ppo on the quickstart recipe, one row per step")
    log.write(f"\n=== {' '.join(cmd)}\n")
    counts = data_source_counts(root / "quickstart" / "esci" / "val.parquet")  # the recipe validates every row
    code, history = train(cmd, env, work_dir, log, args.verbose, counts)
    if code == 0 and (result := summary(history, counts)) is not None:
        say(f"before/after training: {result}")
    return code


def run_llm(args: argparse.Namespace, overrides: list[str], work_dir: Path, log: TextIO, log_path: Path) -> int:
    """The default: SmolLM2-135M-Instruct on the bundled Vaswani task (:mod:`verl_rec.quickstart_llm`)."""
    from verl_rec import quickstart_llm as llm

    started = time.monotonic()
    llm.check_requirements()
    model, task = llm.prepare(work_dir, None if args.verbose else log)
    cmd = llm.command(args.gpu, model, work_dir, overrides, args.steps)
    env = dict(os.environ, VERL_REC_DATA=str(data_root()))
    if not args.gpu:
        from verl_rec.cpu_backend.overrides import cpu_env

        env.update(cpu_env())
    steps = args.steps or llm.recipe_steps()
    say(f"training SmolLM2-135M-Instruct: stock main_ppo on the {llm.RECIPE} recipe, {steps} GRPO steps "
        f"(prepared in {time.monotonic() - started:.0f} s)")
    log.write(f"\n=== {' '.join(cmd)}\n")
    code, history = train(cmd, env, work_dir, log, args.verbose, row=lambda s, m: llm.step_line(s, m, steps))
    if code == 0:
        with engine_output(None if args.verbose else log):  # the JVM's warnings while scoring the raw requests
            line = llm.results(work_dir, task, history, time.monotonic() - started, log_path)
        say(line)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true",
                        help="the ~3-minute smoke run: a tiny random model on a synthetic catalog (no real learning)")
    parser.add_argument("--gpu", action="store_true", help="run on GPUs with vLLM (--tiny: pass a real model path override)")
    parser.add_argument("--log", default=None,
                        help="where the engines' and the trainer's output goes (default: <data>/quickstart/quickstart.log;"
                             " the curve and the results go next to it, .png and .json)")
    parser.add_argument("--verbose", action="store_true", help="show the engines' and the trainer's output on the console too")
    parser.add_argument("--steps", type=int, default=None,
                        help="GRPO steps (default: the recipe's); validation runs before training and after the last step")
    args, overrides = parser.parse_known_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    root = data_root()
    work_dir = root / "quickstart"
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(args.log or work_dir / ("quickstart_tiny.log" if args.tiny else "quickstart.log")).resolve()
    say(f"data and runs under {work_dir}; engine and trainer output in {log_path}")
    with log_path.open("w") as log:
        code = (run_tiny(args, overrides, root, work_dir, log) if args.tiny
                else run_llm(args, overrides, work_dir, log, log_path))
    say(f"{'finished' if code == 0 else f'main_ppo failed (exit {code})'}; full log: {log_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
