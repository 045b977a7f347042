"""``search(query)`` as a veRL tool (``BaseTool``), answered by the node's retrieval service.

Declared in a tool config yaml (``actor_rollout_ref.rollout.multi_turn.tool_config_path``; the
package ships ``recipes/tools/search_tool.yaml``) as ``verl_rec.integration.search_tool.SearchTool``;
its ``config`` keys besides ``type`` are :class:`~verl_rec.agent.tool_settings.SearchToolSettings`.
The agent loop (:mod:`verl_rec.integration.search_agent_loop`) binds it to the reward's
retrieval service, the policy's tokenizer and the call limit, so the tool searches exactly the
engine the reward scores with (a ``retrieval`` mapping in the tool config is used instead when
given). Calls are answered by :mod:`verl_rec.agent.protocol` and recorded in the episode's
``extra_fields``; a call never raises. After ``max_consecutive_failures`` failed calls in a row
the tool is marked down and the agent loop raises :class:`SearchEngineDown` (veRL shows what a
tool raises to the policy, so the tool cannot stop the run itself). docs/agent.md has the rest.
"""

from __future__ import annotations

import logging
from typing import Any

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from verl_rec.agent.episode import CALLS_KEY, SearchCall
from verl_rec.agent.protocol import (
    SEARCH_TOOL_SCHEMA,
    CallError,
    SearchCallError,
    approximate_tokens,
    check_call_budget,
    read_query,
    render_error,
    render_results,
)
from verl_rec.agent.tool_settings import SearchToolSettings
from verl_rec.retrieval.service.client import RetrievalClient
from verl_rec.retrieval.service.config import ServiceConfig

logger = logging.getLogger(__name__)

FAILURE_LIMIT_KEY = "max_consecutive_failures"


class SearchEngineDown(RuntimeError):
    """The retrieval service failed too many search calls in a row: the run stops."""


class SearchTool(BaseTool):
    """One instance per agent-loop worker process, shared by all its concurrent episodes; an
    episode's own state (its calls) lives in its ``agent_data``."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None) -> None:
        options = {k: v for k, v in dict(config or {}).items() if k not in ("type", "retrieval")}
        self.settings = SearchToolSettings.from_mapping(options, where="the search tool config (tool_config_path)")
        retrieval = (config or {}).get("retrieval")
        self.client: RetrievalClient | None = None
        self.service_config: ServiceConfig | None = None
        if retrieval:
            self._connect(ServiceConfig.from_mapping(retrieval))
        self.max_calls: int | None = None
        self.count_tokens = approximate_tokens
        self._bound = False
        self.consecutive_failures = 0
        self.down: SearchEngineDown | None = None
        super().__init__(config, tool_schema)

    def get_openai_tool_schema(self) -> OpenAIFunctionToolSchema:
        return getattr(self, "tool_schema", None) or OpenAIFunctionToolSchema.model_validate(SEARCH_TOOL_SCHEMA)

    def _connect(self, service: ServiceConfig) -> None:
        if not service.doc_text_path:
            raise KeyError("the search tool shows result titles: set doc_text_path (the corpus JSONL, e.g. "
                           "reward.reward_kwargs.retrieval.doc_text_path=data/esci/corpus.jsonl) in the retrieval config")
        self.service_config = service
        self.client = RetrievalClient(service)

    def bind(self, service: ServiceConfig | None, tokenizer: Any, max_calls: int | None) -> None:
        """What the agent loop knows: the reward's service (unless the tool config named one),
        the policy's tokenizer (for the token budget) and the call limit. Once per process."""
        if self._bound:
            return
        if self.client is None:
            if service is None:
                raise KeyError("the search tool needs a retrieval service: set reward.reward_kwargs.retrieval "
                               "(or a retrieval mapping in the tool config)")
            self._connect(service)
        if tokenizer is not None:
            self.count_tokens = lambda text: len(tokenizer.encode(text, add_special_tokens=False))
        self.max_calls = max_calls
        self._bound = True

    async def execute(self, instance_id: str, parameters: Any, **kwargs: Any) -> tuple[ToolResponse, float, dict]:
        agent_data = kwargs.get("agent_data")
        calls = agent_data.extra_fields.setdefault(CALLS_KEY, []) if agent_data is not None else []
        number = len(calls) + 1
        calls.append(None)  # this call's slot, taken before any await (calls of one turn may run concurrently)
        query = None
        try:
            check_call_budget(number, self.max_calls)
            query = read_query(parameters, self.settings)
            hits = await self._search(query)
            text, shown = render_results(hits, number, self.max_calls, self.settings, self.count_tokens)
            call = SearchCall(query=query, results=shown)
        except SearchCallError as error:
            text = render_error(error, number, self.max_calls)
            call = SearchCall(query=query, error=error.kind.value)  # query: None unless the engine failed
        except Exception:  # a bug here must not end the rollout: the policy sees a failed search
            logger.exception("verl-rec search tool: the call %r failed", parameters)
            error = SearchCallError(CallError.RETRIEVAL_FAILED, "the search failed; try again or answer")
            text, call = render_error(error, number, self.max_calls), SearchCall(query=query, error=error.kind.value)
        calls[number - 1] = call.to_dict()
        return ToolResponse(text=text), 0.0, {"ok": call.ok}

    def check_up(self) -> None:
        """Raise :class:`SearchEngineDown` once the service has failed too many calls in a row."""
        if self.down is not None:
            raise self.down

    async def _search(self, query: str) -> list[tuple[str, str]]:
        try:
            if self.client is None:
                raise RuntimeError("the search tool is not bound to a retrieval service")
            hits = await self.client.hits(query, self.settings.top_k)
        except Exception as exc:  # a dead or restarting service: the policy is told, the rollout goes on
            self._count_failure(exc)
            logger.warning("verl-rec search tool: retrieval failed for %r (%d in a row): %r", query[:200],
                           self.consecutive_failures, exc)
            raise SearchCallError(CallError.RETRIEVAL_FAILED, "the search engine failed; try again or answer") from None
        self.consecutive_failures = 0
        return hits

    def _count_failure(self, exc: Exception) -> None:
        self.consecutive_failures += 1
        limit = self.settings.max_consecutive_failures
        if self.consecutive_failures >= limit and self.down is None:
            where = self.service_config.index_path if self.service_config else "(no service)"
            self.down = SearchEngineDown(
                f"verl-rec search tool: the retrieval service ({where}) failed {self.consecutive_failures} search calls "
                f"in a row (last: {exc!r}); stopping instead of training on failed searches. Check the service "
                f"(its actor log, the index on this node), or raise {FAILURE_LIMIT_KEY} (now {limit}) in the search "
                "tool config (actor_rollout_ref.rollout.multi_turn.tool_config_path, e.g. recipes/tools/search_tool.yaml)")
            logger.error("%s", self.down)
