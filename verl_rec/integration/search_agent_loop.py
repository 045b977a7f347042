"""The ``rec_search_agent`` loop: veRL's tool agent loop with the search tool, plus what the reward needs.

Registered by the plugin under :data:`~verl_rec.tasks.formats.SEARCH_AGENT_LOOP`, the agent loop
of the formats that search; a recipe selects it with
``actor_rollout_ref.rollout.agent.default_agent_loop: rec_search_agent``. Everything else is
veRL's ``ToolAgentLoop`` as configured by ``actor_rollout_ref.rollout.multi_turn`` (tool
outputs get ``response_mask`` 0; at most ``max_user_turns`` tool turns). On top of it this
class binds the search tool to the reward's retrieval service once per worker, stops the run
(``SearchEngineDown``) once the service has failed ``max_consecutive_failures`` calls in a
row, and records an :class:`~verl_rec.agent.episode.Episode` (final turn, calls, policy and
tool token counts) and ``tool_call_counts`` in ``extra_fields``.

A format with pre-fills (``search_prefill`` and ``answer_prefill``, e.g. ``bm25_literature_agent``)
starts the first turn inside a search call and, after the last result, the final turn inside the
answer: the first is part of the prompt (as the single-turn pre-fill is), the second part of the
context veRL appends after the result (``response_mask`` 0). The tool parser reads the first turn
with its pre-fill in front. ``turn_tokens`` in the tool config caps each turn's new tokens.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, register
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

from verl_rec.agent.episode import CALLS_KEY, EPISODE_KEY, Episode, SearchCall, last_turn_span
from verl_rec.agent.protocol import close_prefilled_call
from verl_rec.integration.search_tool import SearchTool
from verl_rec.retrieval.service.config import ServiceConfig
from verl_rec.tasks.formats import SEARCH_AGENT_LOOP, PromptFormat, get_format

TOOL_CONFIG_KEY = "actor_rollout_ref.rollout.multi_turn.tool_config_path"


def reward_service_config(config: Any) -> ServiceConfig | None:
    """The retrieval service of ``reward.reward_kwargs.retrieval`` in a trainer config, if any."""
    retrieval = ((config.get("reward") or {}).get("reward_kwargs") or {}).get("retrieval")
    if not retrieval:
        return None
    values = OmegaConf.to_container(retrieval, resolve=True) if OmegaConf.is_config(retrieval) else dict(retrieval)
    return ServiceConfig.from_mapping(values)


@register(SEARCH_AGENT_LOOP)
class SearchAgentLoop(ToolAgentLoop):
    """veRL's ``ToolAgentLoop`` with the search tool bound and the episode recorded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        search_tools = [tool for tool in self.tools.values() if isinstance(tool, SearchTool)]
        if not search_tools:
            raise ValueError(f"the {SEARCH_AGENT_LOOP} agent loop found no search tool: set {TOOL_CONFIG_KEY} to a yaml "
                             "declaring verl_rec.integration.search_tool.SearchTool (the package ships "
                             "${verl_rec_path:recipes/tools/search_tool.yaml})")
        if not self.max_user_turns:
            raise ValueError(f"the {SEARCH_AGENT_LOOP} agent loop needs actor_rollout_ref.rollout.multi_turn.max_user_turns "
                             "(the most searches per episode, e.g. 3)")
        service = reward_service_config(self.config)
        for tool in search_tools:
            tool.bind(service, self.tokenizer, self.max_user_turns)
        self.turn_tokens = search_tools[0].settings.turn_tokens or None
        self._format: PromptFormat | None = None
        self._turns_written = 0

    def _check_search_up(self) -> None:
        """Stop the run (a loud error naming the key) once the search tool has marked the service down."""
        for tool in self.tools.values():
            if isinstance(tool, SearchTool):
                tool.check_up()

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    async def ct_build_initial_tokens(self, messages: list[dict], *args: Any, **kwargs: Any) -> list[int]:
        prompt_ids = await super().ct_build_initial_tokens(messages, *args, **kwargs)
        if self._format is not None and self._format.search_prefill:
            prompt_ids = [*prompt_ids, *self._encode(self._format.search_prefill)]
        return prompt_ids

    async def _handle_generating_state(self, agent_data: Any, sampling_params: dict[str, Any],
                                       ignore_termination: bool = False) -> Any:
        if self.turn_tokens:
            left = self.response_length - len(agent_data.response_mask)
            sampling_params = {**sampling_params, "max_tokens": max(1, min(self.turn_tokens, left))}
        self._turns_written += 1
        return await super()._handle_generating_state(agent_data, sampling_params, ignore_termination)

    async def _handle_processing_tools_state(self, agent_data: Any) -> Any:
        from verl.experimental.agent_loop.tool_agent_loop import AgentState

        state = await super()._handle_processing_tools_state(agent_data)
        fmt = self._format
        if state != AgentState.GENERATING or fmt is None or not fmt.answer_prefill or (
                agent_data.user_turns < self.max_user_turns):
            return state
        # the turn after the last result is the final one: it starts inside the answer
        prefill = self._encode(fmt.answer_prefill)
        if len(agent_data.response_mask) + len(prefill) >= self.response_length:
            return AgentState.TERMINATED
        agent_data.prompt_ids = [*agent_data.prompt_ids, *prefill]
        agent_data.response_mask = [*agent_data.response_mask, *[0] * len(prefill)]
        if agent_data.response_logprobs:
            agent_data.response_logprobs = [*agent_data.response_logprobs, *[0.0] * len(prefill)]
        return state

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        self._check_search_up()  # no new episode against a service that is down
        extra_info = kwargs.get("extra_info") or {}
        name = extra_info.get("prompt_format") if hasattr(extra_info, "get") else None
        self._format = get_format(str(name)) if name else None
        self._turns_written = 0
        if self._format is not None and self._format.search_prefill and not isinstance(self.tool_parser, _PrefilledFirstTurn):
            self.tool_parser = _PrefilledFirstTurn(self.tool_parser, self._format.search_prefill, self)
        output = await super().run(sampling_params, **kwargs)
        self._check_search_up()
        mask = list(output.response_mask)
        start, end = last_turn_span(mask)
        calls = tuple(SearchCall.from_dict(c) for c in output.extra_fields.pop(CALLS_KEY, None) or () if c)
        policy_tokens = sum(1 for m in mask if m)
        episode = Episode(
            final_text=self.tokenizer.decode(output.response_ids[start:end], skip_special_tokens=False),
            calls=calls,
            policy_tokens=policy_tokens,
            context_tokens=len(mask) - policy_tokens,
        )
        # the same keys for every episode: veRL stacks extra_fields across a batch
        output.extra_fields[EPISODE_KEY] = episode.to_dict()
        output.extra_fields["tool_call_counts"] = len(calls)
        return output


class _PrefilledFirstTurn:
    """The tool parser, reading the first turn with the search pre-fill in front (the pre-fill is
    in the prompt, so the generated ids of that turn start inside the call), up to the end of the
    call's JSON object (:func:`~verl_rec.agent.protocol.close_prefilled_call`)."""

    def __init__(self, parser: Any, prefill: str, loop: SearchAgentLoop) -> None:
        self._parser, self._prefill, self._loop = parser, prefill, loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    async def extract_tool_calls(self, response_ids: list[int], *args: Any, **kwargs: Any) -> Any:
        if self._loop._turns_written == 1:
            tokenizer = self._loop.tokenizer
            text = close_prefilled_call(self._prefill + tokenizer.decode(response_ids, skip_special_tokens=True))
            response_ids = list(tokenizer.encode(text, add_special_tokens=False))
        return await self._parser.extract_tool_calls(response_ids, *args, **kwargs)
