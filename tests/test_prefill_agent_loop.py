"""The ``verl_rec_prefill`` agent loop: registered by the plugin on ``import verl``, and it renders
a prompt format's pre-fill after the chat template. The whole loop runs inside the stock trainer
in test_trainer_rec.py (test_prefill_agent_loop_in_stock_main_ppo)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from types import SimpleNamespace

import pytest

from verl_rec.tasks.formats import get_format
from verl_rec.tasks.records import TaskRecord

pytestmark = pytest.mark.slow  # importing veRL's agent loops takes 15-30 s on 2 busy cores


def test_plugin_registers_the_prefill_agent_loop_with_verl():
    """In a fresh process, as in a Ray worker: importing veRL's agent loops registers ours."""
    code = ("import verl.experimental.agent_loop as m; from verl.experimental.agent_loop.agent_loop import "
            "_agent_loop_registry as r; print(sorted(r)); print(r['verl_rec_prefill']['_target_'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    names, target = out.stdout.strip().splitlines()[-2:]
    assert "verl_rec_prefill" in names and "single_turn_agent" in names
    assert target == "verl_rec.integration.prefill_agent_loop.PrefillAgentLoop"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from verl_rec.devkit.tiny_model import build_tiny_model

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def loop_for(tokenizer, prompt_length: int):
    """The loop's prompt step with what veRL would give it (no LLM server is needed for it)."""
    from verl_rec.integration.prefill_agent_loop import PrefillAgentLoop

    loop = PrefillAgentLoop.__new__(PrefillAgentLoop)
    loop.tokenizer, loop.apply_chat_template_kwargs = tokenizer, {}
    loop.rollout_config = SimpleNamespace(prompt_length=prompt_length)

    async def build(messages, extra_info):
        from verl_rec.integration.prefill_agent_loop import row_format

        loop.loop = asyncio.get_running_loop()
        loop._format = row_format({"extra_info": extra_info})
        return await loop.ct_build_initial_tokens(messages)

    return build


def test_prompt_tokens_end_with_the_prefill(tokenizer):
    record = TaskRecord("r", "esci", "search", {"B1": 1.0}, query="red pen")
    fmt = get_format("paper_sparse")
    build = loop_for(tokenizer, prompt_length=4096)
    ids = asyncio.run(build(fmt.messages(record), {"prompt_format": "paper_sparse"}))
    assert ids == tokenizer.encode(fmt.render(tokenizer, record), add_special_tokens=False)
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\nLet me solve this step by step.\n<think>")
    plain = asyncio.run(build(get_format("bm25_query").messages(record), {"prompt_format": "bm25_query"}))
    assert plain == tokenizer.apply_chat_template(get_format("bm25_query").messages(record), add_generation_prompt=True,
                                                  tokenize=True, return_dict=False)
    short = asyncio.run(loop_for(tokenizer, prompt_length=50)(fmt.messages(record), {"prompt_format": "paper_sparse"}))
    assert short == ids[-50:]  # over-long prompts are left-truncated as veRL does: the pre-fill stays


def test_a_row_without_a_prompt_format_fails_with_what_to_do(tokenizer):
    with pytest.raises(ValueError, match="RecTaskDataset"):
        asyncio.run(loop_for(tokenizer, 4096)([{"role": "user", "content": "hi"}], {}))
