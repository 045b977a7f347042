"""The words that tell a policy it may search before it answers (the agent prompt formats).

The agent formats (:data:`AGENT_FORMATS`, entries of :mod:`verl_rec.tasks.formats`) ask for the
same final answer as their single-turn formats, so the reward checks the final turn exactly
as it checks a single-turn output; only the search instructions are added to the user turn.
"""

from __future__ import annotations

from verl_rec.agent.protocol import tool_call_text

#: the prompt formats whose episodes run in the search agent loop, and that loop's registered name
AGENT_FORMATS = frozenset({"bm25_agent"})
AGENT_LOOP_NAME = "rec_search_agent"

SEARCH_INSTRUCTIONS = (
    "Before answering you may search the catalog to see what a query retrieves. To search, write only "
    f"{tool_call_text('your query')} and stop; the engine replies with the top products (id | title). "
    "Refine your query with what you see, then give the final query."
)


def is_agent_format(name: str) -> bool:
    return name in AGENT_FORMATS
