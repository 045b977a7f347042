"""Recipes carry a GPU node's sizes, the CPU overrides carry this machine's, and validation is greedy explicitly.

Defect 5 of issue 25: CPU-tuned values (2 reward workers, 2 Lucene threads, a 2g heap, 2 encoder
threads) sat in GPU recipes. Defect 8: greedy validation relied on ``do_sample: false``, which
veRL's agent loop never reads.
"""

from __future__ import annotations

import inspect

import pytest

from verl_rec.cpu_backend.overrides import cpu_overrides
from verl_rec.devkit.cpu_sizes import ENGINE_OPTIONS, recipe_cpu_overrides
from verl_rec.preflight.compose import compose_for_gpus, declared_sizes
from verl_rec.recipes import recipe_names

GPU_RECIPES = [n for n in recipe_names() if declared_sizes(n) is None]  # the quickstart is a 1-GPU demo
GPU_NODE_THREADS = 8  # a GPU node's spare cores beside veRL's workers, at the least
VERL_REWARD_WORKERS = 8  # veRL's own default reward.num_workers


def retrieval(cfg):
    return cfg.reward.reward_kwargs.get("retrieval")


@pytest.mark.parametrize("name", GPU_RECIPES)
def test_gpu_recipes_carry_gpu_node_sizes(name):
    cfg = compose_for_gpus(name, 8)
    assert cfg.reward.num_workers >= VERL_REWARD_WORKERS, f"{name}: reward.num_workers {cfg.reward.num_workers}"
    service = retrieval(cfg)
    if service is None:
        return
    options = service.backend_options
    assert options.get("threads", GPU_NODE_THREADS) >= GPU_NODE_THREADS, f"{name}: {service.backend} threads"
    if service.backend == "lucene":
        heap_gb = float(str(options.heap).rstrip("gG")) if str(options.heap).lower().endswith("g") else 0.0
        assert heap_gb >= 1, f"{name}: Lucene heap {options.heap}"


@pytest.mark.parametrize("name", ["esci_bm25", "c4_dense", "seqrec_beauty_inductive", "vaswani_bm25"])
def test_a_cpu_run_of_a_recipe_still_gets_cpu_sizes(name, tmp_path):
    """What tests/test_trainer_rec.py and bench.learn pass on top of a recipe brings this machine's sizes back."""
    backend = retrieval(compose_for_gpus(name, 1)).backend
    cfg = compose_for_gpus(name, 1, 1, [*cpu_overrides(), *recipe_cpu_overrides(tmp_path / "model", tmp_path, backend)])
    assert cfg.reward.num_workers == 1
    options = retrieval(cfg).backend_options
    for key, value in ENGINE_OPTIONS[backend].items():
        assert str(options[key]) == str(value), f"{name}: {key}"


@pytest.mark.parametrize("name", recipe_names())
def test_validation_is_greedy_by_temperature(name):
    """veRL's agent loop sets validation sampling from val_kwargs temperature, top_p and top_k only."""
    val = compose_for_gpus(name, 8).actor_rollout_ref.rollout.val_kwargs
    assert val.temperature == 0 and val.top_p == 1.0 and val.top_k in (-1, 0)


def test_the_recipes_set_the_validation_temperature_themselves():
    """Not veRL's default by accident: the common recipe says temperature 0 in its own file."""
    import yaml

    from verl_rec.recipes import RECIPES_DIR

    common = yaml.safe_load((RECIPES_DIR / "common" / "rec_r1_grpo.yaml").read_text())
    assert common["actor_rollout_ref"]["rollout"]["val_kwargs"]["temperature"] == 0


def test_veRLs_agent_loop_reads_no_do_sample_for_validation():
    """Pinned by source: the reason temperature 0 must be explicit (experimental/agent_loop/agent_loop.py)."""
    from verl.experimental.agent_loop import agent_loop

    source = inspect.getsource(agent_loop)
    assert 'sampling_params["temperature"] = config.val_kwargs.temperature' in source
    assert "val_kwargs.do_sample" not in source
