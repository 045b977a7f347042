"""``python -m verl_rec.quickstart``: the whole loop on a small bundled example, anywhere.

1. writes a small product catalog in the ESCI release schema (synthetic, offline);
2. turns it into task records + corpus (the ESCI builder of ``data_preprocess/``);
3. indexes the corpus with Lucene (BM25, the paper's engine);
4. CPU mode: builds a tiny local chat model; GPU mode: you pass a real model path;
5. runs the stock ``python -m verl.trainer.main_ppo --config-dir recipes --config-name quickstart``
   and prints reward and validation NDCG per step.

Everything lands under ``$VERL_REC_DATA/quickstart`` (default ``./data/quickstart``).
Extra arguments are Hydra overrides passed to ``main_ppo``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from verl_rec.data.esci import EsciOptions, build_esci
from verl_rec.data.synthetic_catalog import write_esci_release

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


def data_root() -> Path:
    return Path(os.environ.get("VERL_REC_DATA", "data")).resolve()


def prepare(root: Path, n_products: int = 2000, n_queries: int = 300) -> Path:
    """Catalog -> records -> Lucene index (skipped when already built)."""
    from verl_rec.retrieval.lucene.build import build_lucene_index, is_lucene_index

    task_dir = root / "quickstart" / "esci"
    if not (task_dir / "train.parquet").is_file():
        raw = write_esci_release(root / "quickstart" / "raw", n_products=n_products, n_queries=n_queries)
        manifest = build_esci(raw / "shopping_queries_dataset_examples.parquet", task_dir,
                              products_path=raw / "shopping_queries_dataset_products.parquet",
                              category_map_path=raw / "product_categories.csv", options=EsciOptions(val_size=16))
        print(manifest.summary())
    if not is_lucene_index(task_dir / "index_lucene"):
        build_lucene_index(task_dir / "corpus.jsonl", task_dir / "index_lucene", threads=2, heap="1g")
    return task_dir


def command(gpu: bool, model_dir: Path | None, overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-dir={RECIPES}", "--config-name=quickstart"]
    env = dict(os.environ, VERL_REC_DATA=str(data_root()))
    if not gpu:
        from verl_rec.integration.cpu.overrides import cpu_env, cpu_overrides

        cmd += cpu_overrides() + [f"actor_rollout_ref.model.path={model_dir}", "reward.num_workers=2"]
        env.update(cpu_env())
    return cmd + overrides, env


def _val_mean(metrics: dict[str, float], suffix: str) -> str:
    """Mean over data sources of a validation metric, formatted for the step row."""
    values = [v for k, v in metrics.items() if k.startswith(("val-core/", "val-aux/")) and k.endswith(suffix)]
    return f"{sum(values) / len(values):7.4f}" if values else "      -"


def show(line: str) -> None:
    """One short row per step: training reward, and validation reward / NDCG averaged over sources."""
    from verl_rec.integration.cpu.runner import parse_step_metrics

    for step, metrics in parse_step_metrics(line).items():
        train = metrics.get("critic/score/mean")
        print(f"[quickstart] step {step:>3} | train reward {'      -' if train is None else f'{train:7.4f}'} | "
              f"val reward {_val_mean(metrics, '/reward/mean@1')} | val NDCG@10 {_val_mean(metrics, '/ndcg@10/mean@1')} | "
              f"val format_ok {_val_mean(metrics, '/format_ok/mean@1')}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="run on GPUs with vLLM (pass a real model path override)")
    parser.add_argument("--log", default=None, help="full trainer log file (default: <data>/quickstart/train.log)")
    args, overrides = parser.parse_known_args(argv)
    root = data_root()
    prepare(root)
    model_dir = None
    if not args.gpu:
        from verl_rec.integration.tiny_model import build_tiny_model

        from verl_rec.integration.format_warmup import warm_up_format

        model_dir = root / "quickstart" / "tiny_model"
        if not (model_dir / "config.json").is_file():
            print("[quickstart] building a tiny local model and teaching it the answer format (CPU, ~1-3 min)")
            warm_up_format(build_tiny_model(model_dir), root / "quickstart" / "esci" / "train.parquet", steps=250)
    cmd, env = command(args.gpu, model_dir, overrides)
    log_path = Path(args.log or root / "quickstart" / "train.log")
    print(f"[quickstart] running: {' '.join(cmd[:5])} ... (full log: {log_path})", flush=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            show(line)
        code = proc.wait()
    print(f"[quickstart] main_ppo exited with {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
