"""The GPU preflight passes every recipe at 1, 2, 4, 8 GPUs and 2 nodes x 8, and catches what would die.

Recipes compose in-process, as ``main_ppo`` composes them (verl_rec.preflight.compose). Where a
recipe's rollout TP is wider than the cluster (the released TP 2 on 1 GPU), the preflight must
fail on exactly that key and its fix must make the recipe pass: the recipe is one setting away.
"""

from __future__ import annotations

import pytest

from verl_rec.preflight import declared_sizes, run_preflight
from verl_rec.preflight.__main__ import main as preflight_main
from verl_rec.preflight.compose import compose_for_gpus
from verl_rec.preflight.report import INFO
from verl_rec.recipes import recipe_names

SIZES = [(1, 1), (2, 1), (4, 1), (8, 1), (8, 2)]  # (GPUs per node, nodes)
TP_KEY = "actor_rollout_ref.rollout.tensor_model_parallel_size"
ACTOR_MICRO = "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_passes_the_preflight_at_every_size(name):
    fixed = declared_sizes(name)
    for gpus, nodes in SIZES:
        report = run_preflight(name, gpus, nodes)
        where = f"{name} at {nodes} x {gpus}"
        if fixed is not None and gpus * nodes != fixed.gpus:
            assert [f.check for f in report.failures] == ["recipe size"], where
            assert fixed.reason and fixed.reason in report.failures[0].message, where
            continue
        tp = compose_for_gpus(name, gpus, nodes).actor_rollout_ref.rollout.tensor_model_parallel_size
        if tp > gpus * nodes:  # the released TP on too few GPUs: one setting away
            assert [f.key for f in report.failures] == [TP_KEY], f"{where}:\n{report.render()}"
            fix = report.failures[0].fix.split()[0]
            again = run_preflight(name, gpus, nodes, [fix])
            assert again.ok, f"{where} with {fix}:\n{again.render()}"
            continue
        assert report.ok, f"{where}:\n{report.render()}"
    if fixed is not None:
        assert run_preflight(name, fixed.gpus).ok, f"{name} at its own size {fixed.gpus}"


def test_vaswani_bm25_starts_on_its_declared_one_gpu():
    """Defect 1: it inherited rollout TP 2 from common/rec_r1_grpo.yaml, so 0 replicas on 1 GPU."""
    cfg = compose_for_gpus("vaswani_bm25", 1)
    assert cfg.trainer.n_gpus_per_node == 1
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 1
    assert run_preflight("vaswani_bm25", 1).ok


@pytest.mark.parametrize("gpus", [2, 8])
def test_rerank_esci_micro_batches_divide_each_gpus_rows(gpus):
    """Defect 2: n 8 x mini 32 = 256 rows; 128 per GPU on 2 GPUs, and 128 % 12 != 0."""
    assert run_preflight("rerank_esci", gpus).ok
    report = run_preflight("rerank_esci", gpus, overrides=[f"{ACTOR_MICRO}=12"])  # the old value
    (failure,) = report.failures
    rows = 256 // gpus
    assert failure.key == ACTOR_MICRO and f"= {rows} rows per GPU, and {rows} % 12 = {rows % 12}" in failure.message
    assert run_preflight("rerank_esci", gpus, overrides=[failure.fix.split()[0]]).ok


def test_quickstart_is_one_gpu_by_design_and_says_so_elsewhere():
    assert declared_sizes("quickstart").gpus == 1
    assert run_preflight("quickstart", 1).ok
    (failure,) = run_preflight("quickstart", 4).failures
    assert failure.key == "--gpus" and "built for 1 GPU" in failure.message and "--gpus 1" in failure.fix


def test_a_rollout_tp_wider_than_the_world_names_a_tp_that_works():
    report = run_preflight("esci_bm25", 4, overrides=[f"{TP_KEY}=8"])
    (failure,) = report.failures
    assert "8 GPUs per rollout replica on 4 GPU(s)" in failure.message and failure.fix == f"{TP_KEY}=4"


def test_a_mini_batch_that_does_not_split_over_the_gpus_fails_though_veRLs_start_up_passes_it():
    mini = "actor_rollout_ref.actor.ppo_mini_batch_size"
    report = run_preflight("esci_bm25", 8, overrides=["actor_rollout_ref.rollout.n=2", f"{mini}=2"])
    assert [f.status for f in report.findings if f.check == "veRL start-up validation"] == ["ok"]
    (failure,) = [f for f in report.failures if f.key == mini]
    assert "2 prompts x n 2 = 4 rows do not split over 8 data-parallel GPU(s)" in failure.message
    assert failure.fix == f"{mini}=4"


def test_a_gpu_retrieval_engine_must_leave_its_gpu_out_of_veRLs_pool():
    gpu = ["+reward.reward_kwargs.retrieval.backend_options.device=cuda"]
    (failure,) = run_preflight("esci_dense", 8, overrides=gpu).failures
    assert failure.key == "trainer.n_gpus_per_node" and "9 > the node's 8" in failure.message
    # 7 GPUs would not split 384 rows: the fix names the largest pool veRL's split accepts
    assert failure.fix.startswith("trainer.n_gpus_per_node=4 ")
    assert run_preflight("esci_dense", 8, overrides=[*gpu, "trainer.n_gpus_per_node=4"]).ok
    assert not run_preflight("esci_dense", 8, overrides=[*gpu, "trainer.n_gpus_per_node=7"]).ok


def test_an_engine_uri_is_reported_as_an_external_engine_never_failed():
    report = run_preflight("esci_bm25", 8, 2, ["reward.reward_kwargs.retrieval.index_path=http://milvus:19530"])
    assert report.ok
    (finding,) = [f for f in report.findings if f.check == "index path"]
    assert finding.status == INFO and "external engine" in finding.message


def test_prompt_plus_response_longer_than_max_model_len_fails():
    (failure,) = run_preflight("rerank_esci", 2, overrides=["actor_rollout_ref.rollout.max_model_len=4000"]).failures
    assert "3000 + 1024 = 4024 tokens > actor_rollout_ref.rollout.max_model_len 4000" in failure.message
    assert failure.key == "data.max_response_length" and failure.fix.startswith("data.max_response_length=1000")
    assert run_preflight("rerank_esci", 2, overrides=["actor_rollout_ref.rollout.max_model_len=4096"]).ok


def test_the_command_line_prints_the_report_and_exits_by_verdict(capsys):
    assert preflight_main(["--recipe", "esci_bm25", "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "preflight: esci_bm25 would start" in out and "retrieval service per node" in out
    assert preflight_main(["--recipe", "rerank_esci", "--gpus", "2", f"{ACTOR_MICRO}=12"]) == 1
    assert "128 % 12 = 8" in capsys.readouterr().out
    assert preflight_main(["--recipe", "no_such_recipe", "--gpus", "1"]) == 2


def test_doctor_gpu_runs_the_preflight_for_the_named_recipe(capsys):
    from verl_rec.doctor import main as doctor_main
    from verl_rec.doctor import run_recipe_preflight

    assert run_recipe_preflight("esci_bm25", 8, 1) == "ok"
    assert "[ok]   preflight: esci_bm25 on 1 x 8 GPU(s) would start" in capsys.readouterr().out
    assert run_recipe_preflight("vaswani_bm25", None, 1) == "ok"  # the recipe's own size: 1 GPU
    assert "vaswani_bm25 on 1 x 1 GPU(s)" in capsys.readouterr().out
    assert run_recipe_preflight("esci_bm25", 1, 1) == "fail"  # released TP 2 on 1 GPU
    assert "fix: actor_rollout_ref.rollout.tensor_model_parallel_size=1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        doctor_main(["--recipe", "esci_bm25"])  # the preflight belongs to --gpu
