"""What the retrieval service needs to open its engine and run its batcher: plain data from the recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from verl_rec.retrieval.service.placement import reserved_gpus


@dataclass(frozen=True)
class ServiceConfig:
    """Everything needed to open the engine and run the batcher (plain data, from the recipe)."""

    backend: str
    index_path: str
    backend_options: dict[str, Any] = field(default_factory=dict)
    batch_window_ms: float = 10.0
    max_batch_size: int = 1024
    cache_size: int = 100_000
    name: str = "verl_rec_retrieval"
    namespace: str = "verl_rec"
    num_cpus: float = 1.0
    # the corpus JSONL whose short texts (titles) search results show (the agent's search tool);
    # loaded at start when set, never needed by the reward
    doc_text_path: str | None = None
    doc_text_chars: int = 120
    num_gpus: float | None = None  # None: 1 when the engine runs on a GPU, else 0 (see .placement)

    def __post_init__(self) -> None:
        reserved_gpus(self)  # a GPU engine that reserves no GPU is refused here, before any process starts

    @classmethod
    def from_mapping(cls, values: Any) -> ServiceConfig:
        values = dict(values)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown retrieval service key(s) {unknown}; known keys are {sorted(known)}")
        for key in ("backend", "index_path"):
            if not values.get(key):
                raise KeyError(f"retrieval service config needs {key!r} (e.g. backend: bm25s, index_path: /path/to/index)")
        values["backend_options"] = dict(values.get("backend_options") or {})
        return cls(**values)
