"""veRL agent loop that continues a pre-filled assistant turn (the Rec-R1 prompts' start).

veRL 0.9 renders the prompt in the agent loop with the chat template and
``add_generation_prompt``: the assistant turn starts empty. The released Rec-R1 prompts start
it with ``"Let me solve this step by step.\\n<think>"``, and the reward reads the output as a
continuation of that opened ``<think>``. This loop is veRL's single-turn loop with one change:
the prompt is :meth:`PromptFormat.render` of the row's prompt format (the chat template, then
the pre-fill), tokenized as one string, as the released code tokenized its prompt string.

Selected per row by the dataset's ``agent_name`` column (verl-rec's dataset writes the
format's ``agent_loop``, ``verl_rec_prefill`` for formats with a pre-fill), or for every row by
``actor_rollout_ref.rollout.agent.default_agent_loop=verl_rec_prefill``. Registered by the
``verl.plugins`` entry point when veRL imports its agent loops; veRL itself is not changed.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import register
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

from verl_rec.tasks.formats import PREFILL_AGENT_LOOP, PromptFormat, get_format


def row_format(kwargs: dict[str, Any]) -> PromptFormat:
    """The prompt format a row names in ``extra_info["prompt_format"]``; a row without one fails
    with what to do (this loop is for verl-rec task records)."""
    extra_info = kwargs.get("extra_info") or {}
    name = extra_info.get("prompt_format") if hasattr(extra_info, "get") else None
    if not name:
        raise ValueError(f"agent loop {PREFILL_AGENT_LOOP!r} needs extra_info['prompt_format'] in each row; "
                         "use data.custom_cls = verl_rec.integration.dataset.RecTaskDataset")
    return get_format(str(name))


@register(PREFILL_AGENT_LOOP)
class PrefillAgentLoop(SingleTurnAgentLoop):
    """Single-turn rollout whose prompt ends with the prompt format's ``assistant_prefill``."""

    async def run(self, sampling_params: dict[str, Any], priority: int = 0, **kwargs) -> Any:
        self._format = row_format(kwargs)  # veRL makes one loop object per sample
        return await super().run(sampling_params, priority=priority, **kwargs)

    async def ct_build_initial_tokens(self, messages: list[dict], tools=None, images=None, videos=None,
                                      audios=None, mm_inputs_out=None) -> list[int]:
        if images or videos or audios:
            raise ValueError(f"agent loop {PREFILL_AGENT_LOOP!r} renders text prompts only")
        fmt = self._format

        def render() -> list[int]:
            text = fmt.render(self.tokenizer, messages, self.apply_chat_template_kwargs)
            return list(self.tokenizer.encode(text, add_special_tokens=False))

        prompt_ids = await self.loop.run_in_executor(None, render)
        return self._cap_text_prompt_length(prompt_ids)
