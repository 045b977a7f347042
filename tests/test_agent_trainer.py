"""Stock ``python -m verl.trainer.main_ppo`` with the agent recipes ``esci_bm25_agent`` and
``c4_bm25_agent``, on CPU with the ``hf`` rollout: two GRPO steps each.

Overridden only for the tiny model, the tiny catalogs (ESCI, and the same catalog through the
real C4 builder), a smaller tool config (top 3, 96-token results, 2 searches), batch sizes and
the step count: the episodes run in veRL's agent loop (our ``rec_search_agent``), the tool
searches the node's real retrieval service (Lucene), and the reward goes through
``RecR1RewardManager``. The tiny model is first taught the call syntax and the answer format
(:mod:`verl_rec.devkit.agent_warmup`: format only). Checks: tool calls happened (veRL's own
``num_turns`` metric; result blocks in the trained sequences), every sample's reward keys in
validation (sampled, dumped with them): the tool outputs' tokens are masked (``tool_tokens``:
response tokens with ``response_mask`` 0, at least the tokens of every result block the policy
was shown, none in episodes without a call), rewards follow the contract on the final answer,
and no Ray process is left behind.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from helpers_contract import in_contract
from verl_rec.recipes import RECIPES_DIR as RECIPES

pytestmark = pytest.mark.slow

TOOL = {"type": "native", "top_k": 3, "result_tokens": 96, "max_query_words": 16, "max_query_chars": 160}
MAX_SEARCHES = 2
VAL_N = 4  # sampled validation rollouts per record
AGENT_KEYS = ("search_calls", "searches", "search_errors", "search_failures", "first_search_ndcg@1000", "policy_tokens",
              "tool_tokens")
RESULT_BLOCK = re.compile(r"\[search \d+ of \d+\].*?(?=\nassistant\n|$)", re.S)


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    """The tiny catalog as ESCI records and as C4 records, each with its corpus and Lucene index."""
    from helpers_catalog import build_c4_catalog_task, build_catalog_task
    from verl_rec.data_preprocess import build_index

    root = tmp_path_factory.mktemp("catalogs")
    tasks = {"esci_bm25_agent": build_catalog_task(root / "esci", n_products=400, n_queries=120, val_size=6),
             "c4_bm25_agent": build_c4_catalog_task(root / "c4", n_products=400, n_queries=120, val_size=6)}
    for task_dir in tasks.values():
        assert build_index.main(["--corpus", str(task_dir / "corpus.jsonl"), "--backend", "lucene", "--index",
                                 str(task_dir / "index_lucene"), "--threads", "1", "--heap", "512m", "--quiet"]) == 0
    return tasks


@pytest.fixture(scope="module")
def agent_model(tmp_path_factory, catalogs):
    """The tiny model (its tokenizer knows the agent's syntax), taught the call and answer format."""
    from verl_rec.agent.tool_settings import SearchToolSettings
    from verl_rec.devkit.agent_warmup import agent_corpus, warm_up_agent
    from verl_rec.devkit.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path_factory.mktemp("tiny"), vocab_size=1024, seed=0, extra_corpus=agent_corpus())
    esci = catalogs["esci_bm25_agent"]
    settings = SearchToolSettings(**{k: v for k, v in TOOL.items() if k != "type"})
    return warm_up_agent(model, esci / "train.parquet", esci / "corpus.jsonl", max_searches=MAX_SEARCHES,
                         settings=settings, steps=250)


def read_generations(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


@pytest.mark.parametrize("recipe", ["esci_bm25_agent", "c4_bm25_agent"])
def test_agent_recipe_runs_two_grpo_steps_on_cpu(catalogs, agent_model, tmp_path, recipe):
    from transformers import AutoTokenizer

    from verl_rec.devkit.cpu_sizes import CpuSizes, recipe_cpu_overrides
    from verl_rec.devkit.runner import run_main_ppo

    task = catalogs[recipe]
    tool_yaml = tmp_path / "search_tool.yaml"
    tool_yaml.write_text(json.dumps({"tools": [{"class_name": "verl_rec.integration.search_tool.SearchTool",
                                                "config": TOOL}]}))
    dump, val_dump = tmp_path / "generations", tmp_path / "validation"
    retrieval = "reward.reward_kwargs.retrieval"
    result = run_main_ppo([
        # the tiny model and the CPU sizes
        *recipe_cpu_overrides(agent_model, tmp_path, "lucene",
                              CpuSizes(train_batch_size=4, max_prompt_length=384, max_response_length=512,
                                       val_max_samples=6)),
        # the catalog, and the small tool config
        f"data.train_files={task / 'train.parquet'}", f"data.val_files={task / 'val.parquet'}",
        f"{retrieval}.index_path={task / 'index_lucene'}", f"{retrieval}.doc_text_path={task / 'corpus.jsonl'}",
        f"actor_rollout_ref.rollout.multi_turn.tool_config_path={tool_yaml}",
        f"actor_rollout_ref.rollout.multi_turn.max_user_turns={MAX_SEARCHES}",
        f"trainer.rollout_data_dir={dump}", f"trainer.validation_data_dir={val_dump}",
        # validation samples (as training does) so that its episodes, dumped with every reward key, vary
        "actor_rollout_ref.rollout.val_kwargs.do_sample=True", f"actor_rollout_ref.rollout.val_kwargs.n={VAL_N}",
        "actor_rollout_ref.rollout.val_kwargs.temperature=0.6",
    ], tmp_path / "main_ppo.log", timeout_s=900, config_args=[f"--config-dir={RECIPES}", f"--config-name={recipe}"])
    print(f"\n[{recipe}] exit {result.returncode} in {result.wall_s:.0f}s, peak RSS {result.peak_rss_bytes / 2**30:.2f} GiB")
    assert result.returncode == 0, result.tail()
    assert {1, 2} <= set(result.metrics), result.tail()
    assert result.leftover == [], f"processes left behind: {result.leftover}"

    # veRL's own multi-turn metric (turns = 1 + assistant turns + tool turns), and our keys in validation
    steps = result.metrics
    turns = {s: steps[s].get("training/num_turns/max") for s in (1, 2)}
    assert any((t or 0) > 2 for t in turns.values()), (turns, sorted(steps[1]))
    for key in AGENT_KEYS:
        assert any(k.startswith("val-aux/") and f"/{key}/" in k for k in steps[2]), (key, sorted(steps[2]))

    # training rollouts (veRL's dump: the decoded multi-turn response and its score): the tool was
    # called and answered inside the sequences that were trained on, and scores follow the contract
    rows = read_generations(dump)
    assert len(rows) == 2 * 16, len(rows)  # 2 steps x 4 prompts x 4 rollouts
    searched = [r for r in rows if RESULT_BLOCK.search(r["output"])]
    print(f"[{recipe}] training: {len(searched)}/{len(rows)} episodes searched; "
          f"scores {sorted({round(r['score'], 3) for r in rows})[:12]}")
    assert searched, "no training episode called the search tool"
    assert all(in_contract(r["score"]) for r in rows)
    groups = defaultdict(list)
    for row in rows:
        groups[(row["step"], row["input"])].append(row["score"])
    assert any(len(set(g)) > 1 for g in groups.values()), "rewards never varied within a GRPO group"

    # validation episodes (sampled, with every per-sample key of the reward): calls, masks, contract
    rows = read_generations(val_dump)
    assert len(rows) == 6 * VAL_N, len(rows)
    tokenizer = AutoTokenizer.from_pretrained(agent_model)
    print(f"[{recipe}] validation: calls per episode {sorted(int(r['search_calls']) for r in rows)}")
    assert any(r["searches"] > 0 for r in rows), "no validation episode was answered with results"
    for row in rows:
        blocks = RESULT_BLOCK.findall(row["output"])
        assert len(blocks) == row["search_calls"], (row["search_calls"], row["output"][-800:])
        shown = sum(len(tokenizer.encode(block, add_special_tokens=False)) for block in blocks)
        # masked from the loss: every token of what the tool showed (plus the turn markers around it)
        assert row["tool_tokens"] >= shown, (row["tool_tokens"], shown)
        # veRL itself answers a call of an unknown tool name (shown, masked, but not a search)
        assert (row["tool_tokens"] > 0) == (row["search_calls"] > 0 or "Unknown function" in row["output"])
        assert row["policy_tokens"] > 0
        assert in_contract(row["score"]) and (row["score"] == -2.0) == (row["format_ok"] == 0.0)
        if row["score"] > 0:
            assert row["score"] == pytest.approx(0.1 + row["ndcg@1000"], abs=1e-6)
        assert row["searches"] + row["search_errors"] == row["search_calls"] <= MAX_SEARCHES
        assert row["search_failures"] == 0.0  # the service stayed up: no call failed on its side



def test_evaluate_runs_the_warmed_agent_with_transformers(catalogs, agent_model, tmp_path):
    """``verl_rec.evaluate`` on the tiny agent: episodes with the real generator, next to the raw baseline."""
    from verl_rec import evaluate
    from verl_rec.data_preprocess import build_index

    esci = catalogs["esci_bm25_agent"]
    index = tmp_path / "index_bm25s"
    assert build_index.main(["--corpus", str(esci / "corpus.jsonl"), "--backend", "bm25s", "--index", str(index),
                             "--quiet"]) == 0
    tool_yaml = tmp_path / "search_tool.yaml"
    tool_yaml.write_text(json.dumps({"tools": [{"class_name": "verl_rec.integration.search_tool.SearchTool",
                                                "config": TOOL}]}))
    out = tmp_path / "eval"
    assert evaluate.main(["--records", str(esci / "test.parquet"), "--backend", "bm25s", "--index", str(index),
                          "--raw", "--model", f"agent={agent_model}", "--prompt-format", "bm25_agent",
                          "--max-searches", str(MAX_SEARCHES), "--tool-config", str(tool_yaml), "--engine",
                          "transformers", "--limit", "16", "--max-new-tokens", "96", "--out", str(out)]) == 0
    episodes = [json.loads(line) for line in (out / "episodes_agent.jsonl").read_text().splitlines()]
    summary = {r["system"]: r for r in json.loads((out / "results.json").read_text())["summary"]
               if r["data_source"] == "ALL"}
    searches = [sum(1 for c in e["calls"] if not c["error"]) for e in episodes]
    print(f"\n[evaluate] agent searches per episode {searches}; {summary['agent']}")
    assert len(episodes) == 16 and all(len(e["calls"]) <= MAX_SEARCHES for e in episodes)
    assert summary["agent"]["mean_searches"] == pytest.approx(sum(searches) / 16)
    assert summary["raw"]["mean_searches"] == 0.0 and "searches/query" in (out / "results.md").read_text()
