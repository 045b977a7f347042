"""The multi-turn retrieval agent, without veRL or the reward: the policy calls
``search(query)``, reads the top results, refines, and gives its final ``<answer>``.

* :mod:`.tool_settings`: the search tool's settings (top k, token budget, query limits);
* :mod:`.protocol`: the call syntax, argument checks, error messages and the result text that
  both the veRL tool (:mod:`verl_rec.integration.search_tool`) and the evaluation use;
* :mod:`.episode`: what one episode did (its calls, its final turn), as veRL's agent loop
  hands it to the reward.

The agent prompt formats (their search instructions, their agent loop) are prompt formats
like any other (:mod:`verl_rec.tasks.formats`); an episode's reward is
:mod:`verl_rec.reward.episode`.
"""
