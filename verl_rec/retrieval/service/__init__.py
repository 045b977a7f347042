"""The shared per-node retrieval service: one engine, many reward workers.

* :mod:`.config`: :class:`~.config.ServiceConfig`, plain data from the recipe;
* :mod:`.actor`: :class:`~.actor.RetrievalService`, the Ray actor body (micro-batching,
  dedupe, cache), with its bookkeeping in :mod:`.batching` and :mod:`.cache`;
* :mod:`.client`: :class:`~.client.RetrievalClient` and :func:`~.client.get_or_start_service`,
  used from any Ray process.
"""
