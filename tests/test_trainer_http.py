"""The ``esci_bm25_http`` recipe trains through stock ``python -m verl.trainer.main_ppo`` on the CPU,
2 GRPO steps, its reward served over HTTP by a real engine: Anserini's REST server over the
recipe's own (tiny ESCI) Lucene index, started here.

Between the service and the server sits a pass-through proxy that refuses every second request
(HTTP 400): those samples must score as retrieval errors (0) and reach the step's metrics
(``train-aux/retrieval_error/mean``), and the run must go on. Changed only by the CPU sizes of
:mod:`verl_rec.devkit.cpu_sizes` and the engine's URL.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers_contract import in_contract
from helpers_http_engine import FaultyProxy
from helpers_recipe_data import RecipeData, compose_recipe
from test_trainer_rec import RecipeRun, longest
from verl_rec.recipes import RECIPES_DIR as RECIPES

pytestmark = pytest.mark.slow

RECIPE = "esci_bm25_http"
ROLLOUT_N = 4


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("verl_rec_data")
    saved = os.environ.get("VERL_REC_DATA")
    os.environ["VERL_REC_DATA"] = str(root)  # the recipe's ${oc.env:VERL_REC_DATA} resolve here
    yield RecipeData(root)
    if saved is None:
        os.environ.pop("VERL_REC_DATA")
    else:
        os.environ["VERL_REC_DATA"] = saved


def read_generations(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def test_esci_bm25_http_trains_against_a_real_rest_server(data_root, tmp_path):
    from verl_rec.devkit.anserini_rest import rest_server
    from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
    from verl_rec.devkit.format_warmup import WarmupTask, warm_up_formats
    from verl_rec.devkit.runner import run_main_ppo
    from verl_rec.devkit.tiny_model import build_tiny_model

    cfg = compose_recipe(RECIPE)
    OmegaConf.resolve(cfg)
    retrieval = cfg.reward.reward_kwargs.retrieval
    assert retrieval.backend == "http" and "://" in retrieval.index_path
    train = Path(cfg.data.train_files)
    folder = data_root.folder(str(train.parent.relative_to(data_root.root)))
    index = data_root.index(Path(retrieval.backend_options.params.index), "lucene")  # the index the server searches
    assert index.parent == folder
    model = warm_up_formats(build_tiny_model(tmp_path / "tiny", seed=0), [WarmupTask(train, cfg.data.prompt_format)],
                            steps=300)
    run = longest(model, RecipeRun(train, Path(cfg.data.val_files), cfg.data.prompt_format, "http", ()))
    dump, val_dump = tmp_path / "generations", tmp_path / "val_generations"
    sizes = CpuSizes(rollout_n=ROLLOUT_N, max_prompt_length=64 * math.ceil(run.prompt_tokens / 64),
                     max_response_length=max(64, 32 * math.ceil(1.25 * run.response_tokens / 32)))
    with rest_server(tmp_path / "rest_server.log", index) as server:
        proxy = FaultyProxy(server.url)
        try:
            result = run_main_ppo(
                [*recipe_cpu_overrides(model, tmp_path, "http", sizes),
                 f"trainer.rollout_data_dir={dump}", f"trainer.validation_data_dir={val_dump}"],
                tmp_path / "main_ppo.log", timeout_s=900,
                config_args=[f"--config-dir={RECIPES}", f"--config-name={RECIPE}"],
                extra_env={"VERL_REC_DATA": str(data_root.root), "VERL_REC_HTTP_URL": proxy.url},
            )
        finally:
            proxy.close()
    print(f"\n[{RECIPE}] exit {result.returncode} in {result.wall_s:.0f}s; proxy forwarded {proxy.forwarded}, "
          f"refused {proxy.refused}")
    assert result.returncode == 0, result.tail()
    assert {1, 2} <= set(result.metrics), result.tail()
    assert result.leftover == [], f"processes left behind: {result.leftover}"
    errors = {s: result.metrics[s].get("train-aux/retrieval_error/mean") for s in (1, 2)}
    print(f"[{RECIPE}] train-aux/retrieval_error/mean per step: {errors}")
    assert all(e is not None for e in errors.values()), sorted(result.metrics[1])
    assert proxy.refused > 0 and any(e > 0 for e in errors.values()), (proxy.refused, errors)
    final = result.metrics[2]
    assert any(k.startswith("val-aux/") and "/retrieval_error/" in k for k in final), sorted(final)

    rows = read_generations(dump)
    scores = [row["score"] for row in rows] + [row["score"] for row in read_generations(val_dump)]
    assert rows and all(in_contract(s) for s in scores), sorted(set(scores))
    assert any(s != -2.0 for s in scores), "no rollout was well formed: the reward never asked the engine"
