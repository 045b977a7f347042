"""A search engine of your own, reached over HTTP (``backend: http``): request templates,
response paths, a client with retries, and the :class:`~verl_rec.retrieval.base.Retriever` over them.

Standard library only: nothing here imports veRL, an HTTP client package or an engine's SDK.
"""
