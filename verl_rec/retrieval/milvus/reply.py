"""One search call whose reply is read as arrays: ids and scores per query, no Python object per hit.

pymilvus turns every hit of a reply into Python dicts (``SearchResult``); at the reward's depth
(k=1000, hundreds of queries a step) that parsing, not the engine, was most of the call
(docs/performance.md). Here the request is built by pymilvus and sent on its own gRPC stub, and
the reply's flat ``topks`` / ``ids`` / ``scores`` are split per query. These are pymilvus
internals (2.5): when they are missing, the public ``MilvusClient.search`` is used instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _public_search(client: Any, collection: str, data: list[Any], anns_field: str, params: Mapping[str, Any],
                   limit: int, consistency_level: str, timeout: int) -> list[tuple[list[str], np.ndarray]]:
    out = []
    for rows in client.search(collection, data=data, anns_field=anns_field, limit=limit, search_params=dict(params),
                              output_fields=[], consistency_level=consistency_level, timeout=timeout):
        ids, distances = getattr(rows, "ids", None), getattr(rows, "distances", None)
        if ids is None or distances is None:
            ids, distances = [r["id"] for r in rows], [r["distance"] for r in rows]
        out.append(([str(i) for i in ids], np.asarray(distances, dtype=np.float32)))
    return out


def search_arrays(client: Any, collection: str, data: Sequence[Any], anns_field: str, params: Mapping[str, Any],
                  limit: int, consistency_level: str, timeout: int) -> list[tuple[list[str], np.ndarray]]:
    """Per query of ``data``: the ranked ids (as strings) and float32 scores, best first."""
    data = list(data)
    try:
        from pymilvus.client.prepare import Prepare
        from pymilvus.client.utils import check_status

        handler = client._get_connection()
        stub = handler._stub
    except (ImportError, AttributeError):
        return _public_search(client, collection, data, anns_field, params, limit, consistency_level, timeout)
    request = Prepare.search_requests_with_expr(collection, data, anns_field, dict(params), limit, None, None, [], -1,
                                                consistency_level=consistency_level)
    response = stub.Search(request, timeout=timeout)
    check_status(response.status)
    results = response.results
    topks = np.asarray(results.topks, dtype=np.int64)
    ends = np.cumsum(topks)
    scores = np.asarray(results.scores, dtype=np.float32)
    ids = list(results.ids.str_id.data) if results.ids.HasField("str_id") else [str(i) for i in results.ids.int_id.data]
    if len(topks) != len(data) or (len(ends) and ends[-1] != len(ids)):
        raise RuntimeError(f"Milvus answered {len(topks)} rankings of {int(ends[-1]) if len(ends) else 0} hits for "
                           f"{len(data)} queries with {len(ids)} ids")
    out, start = [], 0
    for end in ends.tolist():
        out.append((ids[start:end], scores[start:end].copy()))
        start = end
    return out


__all__ = ["search_arrays"]
