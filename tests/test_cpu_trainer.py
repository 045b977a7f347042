"""Stock ``verl.trainer.main_ppo`` on the CPU: the plugin's platform, engines and "hf" rollout.

The expensive pieces (Ray, the trainer subprocess) are marked ``slow``; the tiny model
is built once per session. The trainer run goes through
``verl_rec.devkit.runner`` so other tests can reuse it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from verl_rec.cpu_backend import PLATFORM_ENV, PLATFORM_NAME, ROLLOUT_NAME, cpu_env, cpu_overrides
from verl_rec.cpu_backend.process_group import normalize_backend
from verl_rec.devkit.runner import parse_step_metrics, run_tiny_grpo
from verl_rec.devkit.tiny_model import IM_END, build_tiny_model

ASSETS = Path(__file__).parent / "assets"
LENGTH_REWARD = ASSETS / "length_reward.py"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), seed=0)


# -- cheap checks ------------------------------------------------------------------


def test_backend_string_normalisation() -> None:
    assert normalize_backend("cpu:gloo,cpu:gloo") == "gloo"
    assert normalize_backend("cpu:gloo") == "cpu:gloo"
    assert normalize_backend("cpu:gloo,cuda:nccl") == "cpu:gloo,cuda:nccl"
    assert normalize_backend(None) is None


def test_cpu_overrides_are_one_consistent_list() -> None:
    overrides = cpu_overrides()
    keys = [o.split("=", 1)[0].lstrip("+") for o in overrides]
    assert len(keys) == len(set(keys)), "a key is overridden twice"
    assert f"actor_rollout_ref.rollout.name={ROLLOUT_NAME}" in overrides
    assert "trainer.device=cpu" in overrides
    assert cpu_env()[PLATFORM_ENV] == PLATFORM_NAME


def test_tiny_model_loads_offline(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 <= n_params <= 1_000_000
    assert json.loads((tiny_model_dir / "tiny_model.json").read_text())["params"] == n_params
    assert tokenizer.eos_token == IM_END and model.config.eos_token_id == tokenizer.eos_token_id

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "find shoes"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nfind shoes<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text  # special tokens are single ids and round-trip


def test_parse_step_metrics_reads_console_logger_lines() -> None:
    text = "(TaskRunner pid=1) step:2 - critic/score/mean:0.5 - val-aux/x/y/mean@1:np.float64(16.0) - bad:abc"
    assert parse_step_metrics(text) == {2: {"critic/score/mean": 0.5, "val-aux/x/y/mean@1": 16.0}}


def test_hf_server_samples_with_log_probs_and_reloads_weights(tiny_model_dir: Path) -> None:
    """The server in-process (no Ray): sampling, log-probs, global_steps, weight reload (packed, as the adapter sends)."""
    import torch
    from verl.workers.config import RolloutConfig

    from verl_rec.cpu_backend.hf_rollout.server import HFRolloutServer
    from verl_rec.cpu_backend.hf_rollout.weight_buffer import pack

    config = RolloutConfig(name=ROLLOUT_NAME, prompt_length=64, response_length=8, dtype="float32")
    model_config = {"path": str(tiny_model_dir), "override_config": {"attn_implementation": "sdpa"}}
    server = HFRolloutServer(config, model_config, replica_rank=0)
    prompt = server.model_config.tokenizer("<|im_start|>user\nfind shoes<|im_end|>\n")["input_ids"]

    async def scenario() -> tuple:
        sampled = await server.generate(prompt, {"temperature": 1.0, "top_p": 1.0, "logprobs": True}, "a")
        zeros = {name: torch.zeros_like(t) for name, t in server.model.state_dict().items()}
        buffer, slots = pack(zeros.items())
        buffer.flags.writeable = False  # as Ray's object store hands it over
        await server.update_packed_weights(buffer, slots, global_steps=7)
        with pytest.raises(RuntimeError, match="weight sync mismatch"):
            await server.update_packed_weights(*pack([("not.a.weight", torch.zeros(2))]), global_steps=8)
        greedy = await server.generate(prompt, {"temperature": 0, "logprobs": True}, "b")
        return sampled, greedy

    sampled, greedy = asyncio.run(scenario())
    assert 1 <= len(sampled.token_ids) <= 8 and len(sampled.log_probs) == len(sampled.token_ids)
    assert all(lp <= 0 for lp in sampled.log_probs)
    assert "global_steps" in sampled.extra_fields
    # All-zero weights give uniform logits: every token has log-prob -log(vocab).
    vocab = server.model.config.vocab_size
    assert greedy.extra_fields["global_steps"] == 7
    assert greedy.log_probs == pytest.approx([-torch.log(torch.tensor(float(vocab))).item()] * len(greedy.token_ids))


# -- Ray and the trainer -----------------------------------------------------------


@pytest.mark.slow
def test_plugin_registrations_happen_inside_ray_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """veRL swallows plugin import errors, so check the registries from a Ray worker process."""
    import ray

    def probe() -> dict:
        import torch.distributed
        import verl  # noqa: F401  (loads the verl.plugins entry point)
        from verl.plugin.platform import get_platform
        from verl.workers.engine import EngineRegistry
        from verl.workers.rollout.base import _ROLLOUT_REGISTRY
        from verl.workers.rollout.replica import RolloutReplicaRegistry

        return {
            "platform": type(get_platform()).__name__,
            "device": get_platform().device_name,
            "replica": RolloutReplicaRegistry.get(ROLLOUT_NAME).__name__,
            "adapter": _ROLLOUT_REGISTRY.get((ROLLOUT_NAME, "async")),
            "engine": EngineRegistry._engines["language_model"]["fsdp2"].get("cpu").__name__,
            "gloo_fix": getattr(torch.distributed.init_process_group, "__verl_rec_gloo_only__", False),
        }

    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a private local cluster, never a shared one
    temp_dir = tempfile.mkdtemp(prefix="vrc_", dir="/tmp")
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        _temp_dir=temp_dir,
        runtime_env={"env_vars": cpu_env()},
        log_to_driver=False,
    )
    try:
        found = ray.get(ray.remote(probe).remote(), timeout=180)
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert found == {
        "platform": "CpuPlatform",
        "device": "cpu",
        "replica": "HFReplica",
        "adapter": "verl_rec.cpu_backend.hf_rollout.adapter.HFServerAdapter",
        "engine": "CpuFSDPEngineWithLMHead",
        "gloo_fix": True,
    }


@pytest.mark.slow
def test_stock_main_ppo_runs_two_grpo_steps_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = run_tiny_grpo(tmp_path, tiny_model_dir, LENGTH_REWARD, steps=2, n=4, batch_size=2)
    print(
        f"\nmain_ppo on CPU: exit {result.returncode}, wall {result.wall_s:.1f} s, "
        f"peak RSS (process tree) {result.peak_rss_bytes / 2**30:.2f} GiB, log {result.log_path}",
        file=sys.stderr,
    )
    assert result.returncode == 0, result.tail()
    assert not result.leftover, f"processes left behind: {result.leftover}"
    assert sorted(result.metrics) == [1, 2], result.tail()

    for step, metrics in result.metrics.items():
        assert "critic/score/mean" in metrics
        # Rollout log-probs reach the trainer and match the actor's, so the server sampled from
        # this step's weights. Measured with lr=1e-2: synced kl <= 0.002, probs diff <= 1e-4;
        # with the weight update skipped, step 2 shows kl 0.052 and probs diff 2.9e-3.
        assert abs(metrics["rollout_corr/kl"]) < 0.02, (step, metrics["rollout_corr/kl"])
        assert metrics["training/rollout_probs_diff_max"] < 1e-3, (step, metrics["training/rollout_probs_diff_max"])
        # global_steps travels in the rollout's extra fields: no trajectory is stale.
        assert metrics["training/off_policy/trajectory_staleness/max"] == 0
    # GRPO needs reward variance within a group: the length reward provides it.
    assert any(m["critic/score/max"] > m["critic/score/min"] for m in result.metrics.values())
    # Validation after the last step logs the reward and its extra key per data source.
    final = result.metrics[2]
    assert "val-core/tiny_query_rewrite/reward/mean@1" in final
    assert "val-aux/tiny_query_rewrite/response_chars/mean@1" in final
