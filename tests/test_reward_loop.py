"""veRL's real RewardLoopManager on a local Ray cluster, through our manager and the shared service.

Shows: one service process serves all reward workers, requests are micro-batched, duplicate
queries are retrieved once, malformed outputs get the penalty, rewards land on the last
valid response token, and the scores equal an independent in-process computation.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest

from verl_rec.recipes import RECIPES_DIR as RECIPES

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from helpers_catalog import build_catalog_task
    from verl_rec.retrieval.lucene.build import build_lucene_index

    task_dir = build_catalog_task(tmp_path_factory.mktemp("catalog"))
    build_lucene_index(task_dir / "corpus.jsonl", task_dir / "index_lucene", threads=1, heap="512m", progress=False)
    return task_dir


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from verl_rec.devkit.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="module")
def ray_cluster():
    tmp = tempfile.mkdtemp(prefix="vrl_", dir="/tmp")
    ray.init(num_cpus=8, include_dashboard=False, _temp_dir=tmp, namespace="verl_rec_test",
             runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    yield
    ray.shutdown()


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        cfg = hydra_compose("quickstart", overrides=["hydra.searchpath=[pkg://verl.trainer.config]", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


def answer(query):
    return f'<think>the shopper wants this</think>\n<answer>{json.dumps({"query": query})}</answer><|im_end|>'


def make_batch(tokenizer, texts, ground_truths, prompt_len=8, response_len=96):
    """A DataProto shaped like the trainer's: left-padded prompts, right-padded responses."""
    import torch
    from verl import DataProto

    n = len(texts)
    prompts = torch.full((n, prompt_len), tokenizer.pad_token_id or 0, dtype=torch.long)
    responses = torch.full((n, response_len), tokenizer.pad_token_id or 0, dtype=torch.long)
    attention = torch.zeros((n, prompt_len + response_len), dtype=torch.long)
    lengths = []
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:response_len]
        responses[i, : len(ids)] = torch.tensor(ids)
        attention[i, :prompt_len] = 1
        attention[i, prompt_len : prompt_len + len(ids)] = 1
        lengths.append(len(ids))
    batch = DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": attention,
                 "input_ids": torch.cat([prompts, responses], 1),
                 "position_ids": torch.arange(prompt_len + response_len).expand(n, -1).clone()},
        non_tensors={
            "data_source": np.array(["esci/test"] * n, dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": g} for g in ground_truths], dtype=object),
            "extra_info": np.array([{"prompt_format": "bm25_query", "index": i} for i in range(n)], dtype=object),
        },
    )
    return batch, lengths


@pytest.mark.parametrize("source", ["importlib", "register"])
def test_reward_loop_manager_with_shared_service(catalog, tiny_model, ray_cluster, source):
    import pandas as pd
    from transformers import AutoTokenizer
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    from verl_rec.retrieval.lucene.retriever import LuceneRetriever
    from verl_rec.reward.compute_score import compute_score

    name = f"svc_{source}"
    manager_cfg = (["reward.reward_manager.source=register", "reward.reward_manager.name=rec_r1"]
                   if source == "register" else [])
    cfg = compose([
        f"actor_rollout_ref.model.path={tiny_model}", "reward.num_workers=3",
        f"reward.reward_kwargs.retrieval.index_path={catalog / 'index_lucene'}",
        f"+reward.reward_kwargs.retrieval.name={name}", "reward.reward_kwargs.retrieval.batch_window_ms=50",
        *manager_cfg,
    ])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    records = pd.read_parquet(catalog / "train.parquet").head(8)
    texts, truths = [], []
    for _, row in records.iterrows():  # a GRPO-like group: 4 rollouts, 2 identical, 1 malformed
        texts += [answer(row["query"]), answer(row["query"]), answer(row["query"] + " premium"), "no tags at all"]
        truths += [row["qrels"]] * 4
    batch, lengths = make_batch(tokenizer, texts, truths)

    manager = RewardLoopManager(cfg)
    out = manager.compute_rm_score(batch)
    rm = out.batch["rm_scores"].numpy()

    # the reward sits on the last valid response token, nowhere else
    for i, length in enumerate(lengths):
        nonzero = np.flatnonzero(rm[i])
        assert set(nonzero) <= {length - 1}
    scores = np.array([rm[i, length - 1] for i, length in enumerate(lengths)])
    extra = {k: np.asarray(out.non_tensor_batch[k], dtype=float) for k in out.meta_info["reward_extra_keys"]}
    assert set(extra) == {"format_ok", "retrieval_error", "query_words", "query_repeated_words", "query_repeat_share",
                          "ndcg@1000", "ndcg@10", "ndcg@20", "ndcg@100", "recall@100"}
    malformed = np.arange(len(texts)) % 4 == 3
    assert np.all(scores[malformed] == -2.0) and np.all(extra["format_ok"][malformed] == 0)
    assert np.all(extra["retrieval_error"] == 0)
    assert np.all((scores[~malformed] == 0) | (scores[~malformed] > 0.1))
    assert scores[~malformed].max() > 0.1, "the raw product-title queries should find their products"

    # one service process for all workers; micro-batched; duplicates retrieved once
    from omegaconf import OmegaConf

    from verl_rec.retrieval.service.config import ServiceConfig
    from verl_rec.retrieval.service.placement import service_name

    retrieval = OmegaConf.to_container(cfg.reward.reward_kwargs.retrieval, resolve=True)
    service_config = ServiceConfig.from_mapping(retrieval)
    assert service_config.name == name
    service = ray.get_actor(service_name(service_config, ray.get_runtime_context().get_node_id()), namespace="verl_rec")
    info = ray.get(service.info.remote())
    worker_pids = set(ray.get([w.__ray_call__.remote(lambda self: os.getpid()) for w in manager.reward_loop_workers]))
    assert len(worker_pids) == 3 and info["pid"] not in worker_pids
    valid = int((~malformed).sum())
    assert valid <= info["requests"] <= valid + 2  # veRL pads the batch to a multiple of num_workers
    assert info["batches"] < valid and info["max_batch"] > 1, info
    assert info["calls"] == 3, info  # each worker sent all its samples in ONE call (no stragglers)
    assert info["deduplicated"] + info["cache_hits"] >= 8, info  # the 8 repeated queries
    assert info["engine_queries"] <= 16
    print(f"\n[service] {info['requests']} requests from 3 workers -> {info['batches']} batches "
          f"(sizes {info['batch_sizes']}), {info['engine_queries']} engine queries, "
          f"{info['deduplicated']} deduplicated, {info['cache_hits']} cache hits")

    # the same scores as an independent in-process computation
    from conftest import LUCENE_HEAP  # one JVM per process: use the heap the other tests use

    with LuceneRetriever(catalog / "index_lucene", threads=1, heap=LUCENE_HEAP) as engine:
        for i, text in enumerate(texts):
            expected = compute_score("esci", text, truths[i], None, retriever=engine,
                                     eval_metrics=["ndcg@10", "ndcg@20", "ndcg@100", "recall@100"])
            assert scores[i] == pytest.approx(expected["score"], abs=1e-6)
            assert extra["ndcg@10"][i] == pytest.approx(expected["ndcg@10"], abs=1e-9)
    ray.kill(service)
