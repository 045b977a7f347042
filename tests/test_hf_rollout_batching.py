"""The ``hf`` rollout server batches the requests of a burst: same tokens, same log-probs.

In-process (no Ray), on the dev kit's tiny random model in float32. Tolerance: batched and
single log-probs of the same tokens agree within ``LOG_PROB_ATOL`` (left padding changes the
shape of the matrix products, so float32 rounding differs: measured <= 5e-7; with the padding
mask dropped they differ by 0.14).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from verl_rec.cpu_backend import ROLLOUT_NAME
from verl_rec.cpu_backend.hf_rollout.batching import BatchingConfig, SamplingSettings, left_pad, response_length
from verl_rec.devkit.tiny_model import build_tiny_model

LOG_PROB_ATOL = 1e-4
GREEDY = {"temperature": 0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
SAMPLED = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
TEXTS = ["find shoes", "a quiet keyboard with brown switches for the office",
         "which enzyme in saliva breaks down starch", "maps"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), seed=0)


def make_server(model_dir: Path, response_length: int = 12, seed: int = 42, **hf: object):
    from verl.workers.config import RolloutConfig

    from verl_rec.cpu_backend.hf_rollout.server import HFRolloutServer

    config = RolloutConfig(name=ROLLOUT_NAME, prompt_length=64, response_length=response_length, dtype="float32",
                           engine_kwargs={"hf": hf}, seed=seed)
    model_config = {"path": str(model_dir), "override_config": {"attn_implementation": "sdpa"}}
    server = HFRolloutServer(config, model_config, replica_rank=0)
    calls: list[int] = []
    sample = server._sample

    def counted(prompts, settings, max_tokens):
        calls.append(len(prompts))
        return sample(prompts, settings, max_tokens)

    server._sample = counted
    return server, calls


def prompts(server) -> list[list[int]]:
    tokenizer = server.model_config.tokenizer
    return [tokenizer(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")["input_ids"] for text in TEXTS]


def burst(server, requests: list[tuple[list[int], dict]]) -> list:
    """All requests at once, as the agent loop sends a step's samples."""
    async def scenario():
        return await asyncio.gather(*(server.generate(ids, dict(params), f"r{i}")
                                      for i, (ids, params) in enumerate(requests)))
    return asyncio.run(scenario())


def test_batched_greedy_generation_matches_one_by_one(tiny_model_dir: Path) -> None:
    batched_server, batched_calls = make_server(tiny_model_dir)
    single_server, single_calls = make_server(tiny_model_dir, batching=False)
    ids = prompts(batched_server)
    assert len({len(p) for p in ids}) > 1, "prompts of different lengths, so that padding happens"

    batched = burst(batched_server, [(p, GREEDY) for p in ids])
    single = burst(single_server, [(p, GREEDY) for p in ids])
    assert batched_calls == [len(ids)] and single_calls == [1] * len(ids)
    for b, s in zip(batched, single):
        assert b.token_ids == s.token_ids
        assert b.log_probs == pytest.approx(s.log_probs, abs=LOG_PROB_ATOL)
        assert len(b.log_probs) == len(b.token_ids) >= 1


def test_batched_sampled_log_probs_match_a_forward_pass_of_each_sequence(tiny_model_dir: Path) -> None:
    """What the actor computes: log_softmax(logits / T) of each unpadded prompt + response."""
    import torch

    server, calls = make_server(tiny_model_dir, response_length=16)
    ids = prompts(server)
    params = dict(SAMPLED, temperature=0.7)
    outputs = burst(server, [(p, params) for p in ids for _ in range(3)])
    assert calls == [len(outputs)]
    with torch.no_grad():
        for prompt, out in zip([p for p in ids for _ in range(3)], outputs):
            sequence = torch.tensor([prompt + out.token_ids])
            logits = server.model(input_ids=sequence).logits[0, len(prompt) - 1 : -1].float()
            expected = torch.log_softmax(logits / 0.7, dim=-1).gather(-1, torch.tensor(out.token_ids)[:, None])
            assert out.log_probs == pytest.approx(expected.squeeze(-1).tolist(), abs=LOG_PROB_ATOL)


def test_requests_are_grouped_by_sampling_settings_and_keep_their_budgets(tiny_model_dir: Path) -> None:
    server, calls = make_server(tiny_model_dir, response_length=12)
    single_server, _ = make_server(tiny_model_dir, response_length=12, batching=False)
    ids = prompts(server)
    short = dict(GREEDY, max_tokens=3)
    requests = [(ids[0], GREEDY), (ids[1], SAMPLED), (ids[2], short), (ids[3], SAMPLED),
                (ids[0], dict(SAMPLED, repetition_penalty=1.3))]  # the penalty reads pad tokens: alone
    outputs = burst(server, requests)
    assert sorted(calls) == [1, 2, 2]  # greedy (two budgets share a call), sampled, penalised
    assert len(outputs[2].token_ids) <= 3
    alone = burst(single_server, [(ids[2], short), (ids[0], GREEDY)])
    assert outputs[2].token_ids == alone[0].token_ids and outputs[0].token_ids == alone[1].token_ids


def test_the_rollout_seed_decides_the_samples(tiny_model_dir: Path) -> None:
    """As veRL seeds vLLM: the same ``rollout.seed`` repeats a run's samples, another seed changes them."""
    def sampled(seed: int) -> list[list[int]]:
        server, _ = make_server(tiny_model_dir, response_length=24, seed=seed)
        return [out.token_ids for out in burst(server, [(p, SAMPLED) for p in prompts(server)])]

    first = sampled(1)
    assert sampled(1) == first
    assert sampled(2) != first


def test_batch_size_is_capped(tiny_model_dir: Path) -> None:
    server, calls = make_server(tiny_model_dir, max_batch_size=3)
    burst(server, [(p, SAMPLED) for p in prompts(server) for _ in range(2)])
    assert calls == [3, 3, 2]


def test_a_failed_batch_fails_its_requests_and_the_server_goes_on(tiny_model_dir: Path) -> None:
    server, _ = make_server(tiny_model_dir)
    ids = prompts(server)
    real = server._sample
    server._sample = lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        burst(server, [(ids[0], GREEDY), (ids[1], GREEDY)])
    server._sample = real
    assert len(burst(server, [(ids[0], GREEDY)])[0].token_ids) >= 1


def test_batching_settings_are_checked() -> None:
    assert BatchingConfig.from_engine_kwargs(None) == BatchingConfig()
    assert BatchingConfig.from_engine_kwargs({"vllm": {}, "hf": {"batching": False}}).batching is False
    with pytest.raises(KeyError, match="window_ms"):
        BatchingConfig.from_engine_kwargs({"hf": {"window": 5}})
    with pytest.raises(ValueError):
        BatchingConfig(max_batch_size=0)


def test_padding_and_row_ends() -> None:
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids == [[5, 6, 7], [0, 0, 8]] and mask == [[1, 1, 1], [0, 0, 1]]
    assert response_length([4, 2, 0, 0], eos_ids={2}, max_tokens=10) == 2  # EOS kept, padding cut
    assert response_length([4, 5, 6, 7], eos_ids={2}, max_tokens=3) == 3  # the row's own budget
    assert response_length([4, 5], eos_ids={2}, max_tokens=3) == 2

    class Defaults:
        temperature, top_p, top_k = 1.0, 0.9, -1

    settings = SamplingSettings.from_params({"temperature": 0}, Defaults)
    assert not settings.do_sample and settings.logit_scale == 1.0 and settings.top_k == 0
    assert settings.generate_kwargs() == {"do_sample": False, "repetition_penalty": 1.0}
