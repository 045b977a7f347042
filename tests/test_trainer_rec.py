"""Every recipe trains: stock ``python -m verl.trainer.main_ppo --config-dir <recipes> --config-name <recipe>``
on the CPU, 2 GRPO steps, for each recipe in ``verl_rec/recipes/*.yaml``.

Each run reads the recipe's own data paths under ``$VERL_REC_DATA``, filled with small data in
the task's real schema by our builders (``helpers_recipe_data``), and is changed only by the
device and size overrides of :mod:`verl_rec.devkit.cpu_sizes`. One tiny model, warmed up on the
answer format of every recipe's prompt format (random words, random candidate orders: never
what retrieves), serves all runs. The reward goes through ``RecR1RewardManager``: the shared
retrieval service over a real Lucene index, a real MiniLM + faiss HNSW index, or, for
re-ranking, the ranked candidate list itself.

Checked per recipe: exit code 0, two steps, no Ray process left behind; the recipe's training
metric and evaluation metrics logged per data source; every reward in the contract's set
(-2, 0 or 0.1 + metric in (0.1, 1.1]); real rollouts scored (some well formed; re-ranking:
some > 0); pre-filled prompts read as pre-filled. Whether rewards varied within GRPO groups
is printed, not asserted (the tiny model cannot copy a prompt's words; see the test).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers_contract import in_contract
from helpers_recipe_data import INDEX_BACKENDS, RecipeData, compose_recipe
from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
from verl_rec.devkit.runner import RunResult, run_main_ppo
from verl_rec.recipes import RECIPES_DIR as RECIPES
from verl_rec.recipes import recipe_names

pytestmark = pytest.mark.slow

BASE_KEYS = ("format_ok", "retrieval_error", "query_words", "query_repeated_words", "query_repeat_share")
#: recipes this file does not run, and where they are tested instead
ELSEWHERE: dict[str, str] = {"esci_bm25_agent": "tests/test_agent_trainer.py",
                             "c4_bm25_agent": "tests/test_agent_trainer.py",
                             "esci_bm25_http": "tests/test_trainer_http.py",
                             "esci_bm25_milvus": "tests/test_trainer_milvus.py",
                             "esci_dense_milvus": "tests/test_trainer_milvus.py",
                             # SmolLM2 for ~10 min: python -m bench.quickstart; its parts and command there
                             "quickstart_vaswani": "tests/test_quickstart_llm.py",
                             # its loop and tool config with a scripted policy; SmolLM2 trains it in bench.learn
                             "quickstart_vaswani_agent": "tests/test_agent_tool.py"}
RUN = [name for name in recipe_names() if name not in ELSEWHERE]
ROLLOUT_N = 4
WARMUP_STEPS = 300


@dataclass(frozen=True)
class RecipeRun:
    """What a recipe reads and logs, from its composed config."""

    train_file: Path
    val_file: Path
    prompt_format: str
    backend: str | None
    metric_keys: tuple[str, ...]
    prompt_tokens: int = 0
    response_tokens: int = 0


def read_recipe(name: str, data: RecipeData) -> RecipeRun:
    """Compose the recipe as main_ppo does, build the data and index it names."""
    cfg = compose_recipe(name)
    OmegaConf.resolve(cfg)
    train, val = Path(cfg.data.train_files), Path(cfg.data.val_files)
    folder = data.folder(str(train.parent.relative_to(data.root)))
    assert (folder / train.name).is_file() and val.is_file(), f"{name}: {train} / {val} not built"
    kwargs = cfg.reward.reward_kwargs
    retrieval = kwargs.get("retrieval")
    backend = None
    if retrieval:
        index = Path(retrieval.index_path)
        backend = retrieval.backend
        assert INDEX_BACKENDS.get(index.name, backend) == backend, (name, index, backend)
        data.index(index, backend, retrieval.get("backend_options"))
    metrics = tuple(dict.fromkeys([kwargs.metric, *kwargs.eval_metrics]))
    return RecipeRun(train, val, cfg.data.prompt_format, backend, metrics)


def longest(model_dir: Path, run: RecipeRun) -> RecipeRun:
    """The run with the token counts of its longest rendered prompt and of the longest answer the
    warm-up teaches (every word, every candidate): the CPU run's prompt and response lengths."""
    from transformers import AutoTokenizer

    from verl_rec.devkit.format_warmup import read_examples, response_text, rollout_prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = [e for path in (run.train_file, run.val_file) for e in read_examples(path, run.prompt_format)]
    prompt = max(len(rollout_prompt_ids(tokenizer, fmt, r)) for r, fmt in examples)
    answers = [[c.id for c in r.candidates] if fmt.answer_key != "query" else r.query or " ".join(r.history)
               for r, fmt in examples]
    fmt = examples[0][1]
    response = max(len(tokenizer(response_text(fmt, a) + tokenizer.eos_token)["input_ids"]) for a in answers)
    return RecipeRun(**{**run.__dict__, "prompt_tokens": prompt, "response_tokens": response})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("verl_rec_data")
    saved = os.environ.get("VERL_REC_DATA")
    os.environ["VERL_REC_DATA"] = str(root)  # the recipes' ${oc.env:VERL_REC_DATA} resolve here
    yield RecipeData(root)
    if saved is None:
        os.environ.pop("VERL_REC_DATA")
    else:
        os.environ["VERL_REC_DATA"] = saved


def plan_recipes(names, data: RecipeData, model_root: Path) -> tuple[Path, dict[str, RecipeRun]]:
    """The recipes' data and indexes, and one tiny model warmed up on all their formats."""
    from verl_rec.devkit.format_warmup import WarmupTask, warm_up_formats
    from verl_rec.devkit.tiny_model import build_tiny_model

    runs = {name: read_recipe(name, data) for name in names}
    tasks = list(dict.fromkeys(WarmupTask(r.train_file, r.prompt_format) for r in runs.values()))
    model = warm_up_formats(build_tiny_model(model_root, seed=0), tasks, steps=WARMUP_STEPS)
    return model, {name: longest(model, r) for name, r in runs.items()}


@pytest.fixture(scope="module")
def plan(data_root, tmp_path_factory):
    """Every recipe run here: data, indexes and the warmed-up tiny model."""
    return plan_recipes(RUN, data_root, tmp_path_factory.mktemp("tiny"))


def read_generations(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows



def test_every_recipe_is_run_or_tested_elsewhere():
    assert set(RUN) | set(ELSEWHERE) == set(recipe_names())
    for recipe, test_file in ELSEWHERE.items():
        assert recipe in (Path(__file__).parent.parent / test_file).read_text(), (recipe, test_file)
    assert {"esci_bm25", "esci_dense", "c4_bm25", "c4_dense", "seqrec_beauty_transductive",
            "seqrec_beauty_inductive", "rerank_esci", "quickstart", "esci_bm25_transfer", "vaswani_bm25"} <= set(RUN)


def assert_prefill_read(prompt_format: str, rows: list[dict]) -> None:
    """Every rollout's prompt ends with the format's pre-fill (the ``verl_rec_prefill`` agent
    loop), or with no opened ``<think>`` when it has none; the score agrees with the reading of
    the output that the format implies (after a pre-filled ``<think>``, a second one is malformed).
    The pre-filled formats are the search ones; a re-ranked list may parse and still score -2
    (not a permutation), so the agreement is only asked of them."""
    from verl_rec.reward.parsing import parse_output
    from verl_rec.tasks.formats import format_spec, get_format

    prefill = get_format(prompt_format).assistant_prefill
    if not prefill:
        assert not any(row["input"].rstrip().endswith("<think>") for row in rows)
        return
    assert all(row["input"].endswith(prefill) for row in rows), rows[0]["input"][-80:]
    spec = format_spec(prompt_format)
    for row in rows:
        assert (row["score"] != -2.0) == parse_output(row["output"], spec).ok, row


@dataclass(frozen=True)
class TrainedRecipe:
    """One recipe's finished ``main_ppo`` run: its result, what it read, its scored rollouts."""

    result: RunResult
    run: RecipeRun
    rows: list[dict]
    val_scores: list[float]


def train_recipe(plan, data_root: RecipeData, tmp_path: Path, recipe: str,
                 extra_env: dict[str, str] | None = None) -> TrainedRecipe:
    """Run ``recipe`` for 2 steps on the CPU and check what every recipe must show.

    Exit code 0, steps 1 and 2 logged, no process left behind, our extra keys in validation,
    every reward in the contract's set, some rollout well formed. Shared with the Milvus file.
    """
    model, runs = plan
    run = runs[recipe]
    sizes = CpuSizes(rollout_n=ROLLOUT_N, max_prompt_length=64 * math.ceil(run.prompt_tokens / 64),
                     max_response_length=max(64, 32 * math.ceil(1.25 * run.response_tokens / 32)))
    dump, val_dump = tmp_path / "generations", tmp_path / "val_generations"
    result = run_main_ppo(
        [*recipe_cpu_overrides(model, tmp_path, run.backend, sizes),
         f"trainer.rollout_data_dir={dump}", f"trainer.validation_data_dir={val_dump}"],
        tmp_path / "main_ppo.log", timeout_s=900, config_args=[f"--config-dir={RECIPES}", f"--config-name={recipe}"],
        extra_env={"VERL_REC_DATA": str(data_root.root), **(extra_env or {})},
    )
    print(f"\n[{recipe}] exit {result.returncode} in {result.wall_s:.0f}s, peak RSS {result.peak_rss_bytes / 2**30:.2f} GiB")
    assert result.returncode == 0, result.tail()
    assert {1, 2} <= set(result.metrics), result.tail()
    assert result.leftover == [], f"processes left behind (an engine the service did not end?): {result.leftover}"

    final = result.metrics[2]
    for key in BASE_KEYS + run.metric_keys:  # validation logs our fixed extra keys per data source
        assert any(k.startswith("val-aux/") and f"/{key}/" in k for k in final), (key, sorted(final))
    assert any(k.startswith("val-core/") and k.endswith("/reward/mean@1") for k in final), sorted(final)
    print(f"[{recipe}] step metrics:", {s: {k: round(v, 3) for k, v in m.items() if "score" in k or "ndcg" in k}
                                        for s, m in result.metrics.items()})

    rows = read_generations(dump)
    assert rows, "trainer.rollout_data_dir produced no generations"
    scores = [row["score"] for row in rows]
    val_scores = [row["score"] for row in read_generations(val_dump)]
    print(f"[{recipe}] {len(rows)} scored rollouts, scores seen: {sorted({round(s, 3) for s in scores})[:12]}; "
          f"validation: {sorted(round(s, 3) for s in val_scores)}")
    assert val_scores, "trainer.validation_data_dir produced no generations"
    assert all(in_contract(s) for s in scores + val_scores), sorted(set(scores + val_scores))
    assert any(s != -2.0 for s in scores), "no rollout was well formed: the reward never scored an answer"
    return TrainedRecipe(result, run, rows, val_scores)


@pytest.mark.parametrize("recipe", RUN)
def test_main_ppo_recipe_on_cpu(plan, data_root, tmp_path, recipe):
    trained = train_recipe(plan, data_root, tmp_path, recipe)
    groups = defaultdict(list)  # veRL's training dump: input, output, score, step (uid is per sample)
    for row in trained.rows:
        groups[(row["step"], row["input"])].append(row["score"])  # a GRPO group = n rollouts of one prompt
    assert all(len(g) == ROLLOUT_N for g in groups.values()), [len(g) for g in groups.values()]
    assert_prefill_read(trained.run.prompt_format, trained.rows)
    if trained.run.backend is None:  # re-ranking: every candidate list holds the target, so a well-formed answer scores > 0
        assert any(s > 0 for g in groups.values() for s in g), "the re-ranking branch never scored a candidate list"
    # Not asserted: rewards varying within a GRPO group. The tiny model cannot copy a prompt's
    # words (it writes "I am looking for a portle" for a C4 request), so on the long C4 queries
    # a run may score every rollout 0; tests/test_trainer_learning.py is where learning is shown.
    varied = sum(len(set(g)) > 1 for g in groups.values())
    print(f"[{recipe}] {varied}/{len(groups)} GRPO groups with varying rewards")
