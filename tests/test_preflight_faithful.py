"""The preflight's replay gives veRL's own verdict: each check's numbers go through veRL 0.9.1's code.

For each case (a recipe at a size, with overrides that break one rule or none), the rows the
preflight computes are handed to the veRL function that enforces the rule on GPUs, and its
verdict (raises or not) must equal the preflight's. Rules written inline in a worker method
that needs GPUs to construct are pinned by their source text instead (said in each test), so a
veRL release that moves them fails here.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensordict import TensorDict

from verl_rec.preflight import run_preflight
from verl_rec.preflight.checks import run_shape
from verl_rec.preflight.compose import compose_for_gpus
from verl_rec.preflight.report import FAIL

ACTOR, ROLLOUT, REF = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.ref"

#: (recipe, GPUs per node, nodes, overrides): passing cases and ones that break one rule each
CASES = [
    ("esci_bm25", 2, 1, ()),
    ("esci_bm25", 8, 2, ()),
    ("esci_bm25", 8, 2, (f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu=16", f"{REF}.log_prob_micro_batch_size_per_gpu=16")),
    ("rerank_esci", 2, 1, ()),
    ("rerank_esci", 2, 1, (f"{ACTOR}.ppo_micro_batch_size_per_gpu=12",)),
    ("rerank_esci", 8, 1, (f"{ACTOR}.ppo_micro_batch_size_per_gpu=12",)),
    ("esci_bm25", 8, 1, (f"{ROLLOUT}.n=3", "data.train_batch_size=30", f"{ACTOR}.ppo_mini_batch_size=10")),
    ("esci_bm25", 8, 1, (f"{ROLLOUT}.n=2", f"{ACTOR}.ppo_mini_batch_size=2")),
    ("vaswani_bm25", 1, 1, ()),
    ("vaswani_bm25", 1, 1, (f"{ROLLOUT}.tensor_model_parallel_size=2",)),
    ("esci_bm25", 4, 1, (f"{ROLLOUT}.tensor_model_parallel_size=8",)),
    ("esci_bm25", 6, 1, (f"{ROLLOUT}.tensor_model_parallel_size=4",)),
]
IDS = [f"{r}-{n}x{g}-{len(o)}" for r, g, n, o in CASES]


def preflight_failed(case, *checks: str) -> bool:
    recipe, gpus, nodes, overrides = case
    report = run_preflight(recipe, gpus, nodes, list(overrides))
    return any(f.status == FAIL and f.check in checks for f in report.findings)


def rows(n: int) -> TensorDict:
    return TensorDict({"input_ids": torch.zeros(n, 1, dtype=torch.long)}, batch_size=[n])


def verl_micro_split_fails(n_rows: int, micro: int) -> bool:
    """veRL's ``prepare_micro_batches`` (workers/engine/utils.py) on ``n_rows`` rows of one GPU."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine.utils import prepare_micro_batches

    data = rows(n_rows)
    tu.assign_non_tensor(data, use_dynamic_bsz=False, micro_batch_size_per_gpu=micro)
    try:
        prepare_micro_batches(data)
    except AssertionError:
        return True
    return False


class _EngineReached(Exception):
    """train_mini_batch got past its batch-size rules to the engine."""


def verl_mini_split_fails(step_rows_per_gpu: int, mini_rows: int, dp: int) -> bool:
    """veRL's ``TrainingWorker.train_mini_batch`` (workers/engine_workers.py) up to the engine: its
    ``mini_batch_size % dp`` assert and ``make_iterator``'s split of a GPU's rows into mini-batches.
    ``self`` is a stand-in that only answers the data-parallel size (a real engine needs GPUs)."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine_workers import TrainingWorker

    class Engine:
        def get_data_parallel_size(self):
            return dp

        def get_data_parallel_rank(self):
            return 0

        def train_mode(self, **_):
            raise _EngineReached

    data = rows(step_rows_per_gpu)
    tu.assign_non_tensor(data, mini_batch_size=mini_rows, epochs=1)
    try:
        TrainingWorker.train_mini_batch(SimpleNamespace(engine=Engine()), data)
    except AssertionError:
        return True
    except _EngineReached:
        return False
    raise AssertionError("train_mini_batch neither refused the batch nor reached the engine")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_micro_batch_verdicts_are_veRLs(case):
    recipe, gpus, nodes, overrides = case
    shape = run_shape(compose_for_gpus(recipe, gpus, nodes, overrides))
    mini_per_gpu = shape.mini_rows // shape.fsdp_dp
    verl_actor = (verl_mini_split_fails(shape.step_rows_per_gpu, shape.mini_rows, shape.fsdp_dp)
                  or verl_micro_split_fails(mini_per_gpu, shape.actor_micro))
    assert preflight_failed(case, "actor mini-batch split", "actor update micro-batch") == verl_actor
    assert preflight_failed(case, "rollout log-prob micro-batch") == verl_micro_split_fails(
        shape.step_rows_per_gpu, shape.rollout_micro)
    assert preflight_failed(case, "reference log-prob micro-batch") == verl_micro_split_fails(
        shape.step_rows_per_gpu, shape.ref_micro)


def test_the_cases_break_each_micro_batch_rule_at_least_once():
    """The comparison above is live: veRL refuses some case for each rule, and accepts others."""
    verdicts = {"actor": set(), "log-prob": set()}
    for recipe, gpus, nodes, overrides in CASES:
        shape = run_shape(compose_for_gpus(recipe, gpus, nodes, overrides))
        verdicts["actor"].add(verl_mini_split_fails(shape.step_rows_per_gpu, shape.mini_rows, shape.fsdp_dp)
                              or verl_micro_split_fails(shape.mini_rows // shape.fsdp_dp, shape.actor_micro))
        verdicts["log-prob"].add(verl_micro_split_fails(shape.step_rows_per_gpu, shape.rollout_micro))
    assert verdicts == {"actor": {True, False}, "log-prob": {True, False}}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_step_padding_is_veRLs(case):
    """The v1 trainer pads a step's rows to ``_get_required_batch_multiple`` (called on the real config)."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    recipe, gpus, nodes, overrides = case
    cfg = compose_for_gpus(recipe, gpus, nodes, overrides)
    shape = run_shape(cfg)
    trainer = SimpleNamespace(config=cfg, use_critic=False, global_steps=1)
    assert PPOTrainer._get_required_batch_multiple(trainer, shape.fsdp_dp) == shape.batch_multiple


def verl_replicas(cfg, world: int) -> int:
    """How many rollout replicas ``LLMServerManager._initialize_llm_servers`` (workers/rollout/llm_server.py)
    builds for ``cfg``'s rollout config in the hybrid engine, whose worker group spans ``world`` GPUs
    (the group and the replicas are stand-ins that record what veRL asks of them)."""
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.rollout.llm_server import LLMServerManager

    built = []

    class Replica:
        def __init__(self, replica_rank, **_):
            self.replica_rank, self._server_handle, self._server_address = replica_rank, None, f"r{replica_rank}"
            built.append(self)

        async def init_hybrid(self, worker_group):
            return None

    manager = SimpleNamespace(rollout_config=omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout),
                              worker_group=SimpleNamespace(world_size=world), model_config=None,
                              start_rank=0, rollout_replica_class=Replica)
    asyncio.run(LLMServerManager._initialize_llm_servers(manager))
    return len(built)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rollout_replica_verdicts_are_veRLs(case):
    recipe, gpus, nodes, overrides = case
    cfg = compose_for_gpus(recipe, gpus, nodes, overrides)
    shape = run_shape(cfg)
    replica = shape.tp * shape.rollout_dp * shape.pp
    verl_dies = verl_replicas(cfg, shape.world) < 1 or shape.world % replica != 0  # the second: init_model's assert, pinned below
    assert preflight_failed(case, "rollout parallelism") == verl_dies


def test_the_inline_rules_are_still_in_veRLs_source():
    """Rules inside methods that need GPUs to run, pinned by their text: the rollout mesh assert in
    ``ActorRolloutRefWorker.init_model`` and vLLM's max_model_len default in ``_validate_configs``."""
    import verl
    from verl.workers.engine_workers import ActorRolloutRefWorker

    init_model = inspect.getsource(ActorRolloutRefWorker.init_model)
    for line in ("infer_tp = rollout_config.tensor_model_parallel_size * rollout_config.data_parallel_size",
                 "infer_world_size = infer_tp * infer_pp", "assert self.world_size % infer_world_size == 0"):
        assert line in init_model, f"veRL moved the rollout mesh rule: {line!r}"
    server = (Path(verl.__file__).parent / "workers/rollout/vllm_rollout/vllm_async_server.py").read_text()
    for line in ("self.config.max_model_len = max_position_embeddings",
                 "max_possible_tokens = self.config.max_model_len - len(prompt_ids)"):
        assert line in server, f"veRL moved the max_model_len rule: {line!r}"


def test_a_config_veRLs_start_up_validation_refuses_fails_the_preflight():
    """validate_config itself is called: what it refuses (mini-batch above the train batch) is a failure."""
    report = run_preflight("esci_bm25", 2, overrides=["data.train_batch_size=16"])
    (failure,) = [f for f in report.failures if f.check == "veRL start-up validation"]
    assert "train_batch_size (16) must be >=" in failure.message


def test_the_service_reservation_is_reserved_gpus():
    """The service check counts what the service's placement reserves (``reserved_gpus``), nothing else."""
    from verl_rec.preflight.checks import service_config
    from verl_rec.retrieval.service.placement import reserved_gpus

    overrides = ["+reward.reward_kwargs.retrieval.backend_options.device=cuda",
                 "+reward.reward_kwargs.retrieval.num_gpus=2"]
    cfg = compose_for_gpus("esci_dense", 8, 1, overrides)
    assert reserved_gpus(service_config(cfg)) == 2.0
    (failure,) = run_preflight("esci_dense", 8, overrides=overrides).failures
    assert "reserves 2 GPU per node" in failure.message and "10 > the node's 8" in failure.message
