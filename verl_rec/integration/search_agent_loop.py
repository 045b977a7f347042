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
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, register
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

from verl_rec.agent.episode import CALLS_KEY, EPISODE_KEY, Episode, SearchCall, last_turn_span
from verl_rec.integration.search_tool import SearchTool
from verl_rec.retrieval.service.config import ServiceConfig
from verl_rec.tasks.formats import SEARCH_AGENT_LOOP

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

    def _check_search_up(self) -> None:
        """Stop the run (a loud error naming the key) once the search tool has marked the service down."""
        for tool in self.tools.values():
            if isinstance(tool, SearchTool):
                tool.check_up()

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        self._check_search_up()  # no new episode against a service that is down
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
