"""Dev kit: what the quickstart and the tests need to run the real trainer offline on a CPU.

``tiny_model`` (a tiny random chat model built locally), ``format_warmup`` (teaches it the answer
format so rewards vary), ``agent_warmup`` (the search agent's call syntax, for agent recipes),
``tiny_data`` (a tiny GRPO dataset), ``synthetic_catalog`` (a product catalog in the ESCI release
schema) and ``runner`` (stock ``main_ppo`` in a subprocess, with its
metrics, peak memory and leftover processes). Not needed for real training runs.
"""
