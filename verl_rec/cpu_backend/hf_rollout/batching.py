"""How the ``hf`` rollout server groups requests into one ``generate()`` call.

veRL's agent loop sends one request per sample, all of a step's samples within a few
milliseconds. One left-padded ``generate()`` over the lot costs little more than one request
on a CPU (the matrix products widen, the Python overhead per token is paid once), so the
server collects the requests of a short window and generates them together. Only requests
with the same sampling settings share a call: a group's ``generate()`` takes one set.

Settings come from ``actor_rollout_ref.rollout.engine_kwargs.hf`` (veRL's free-form dict per
rollout engine)::

    +actor_rollout_ref.rollout.engine_kwargs.hf.batching=false      # one request at a time
    +actor_rollout_ref.rollout.engine_kwargs.hf.window_ms=20
    +actor_rollout_ref.rollout.engine_kwargs.hf.max_batch_size=32
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENGINE_KWARGS_KEY = "hf"


@dataclass(frozen=True)
class BatchingConfig:
    """``batching`` off serves requests one by one, as the first version of the server did.

    ``max_batch_size`` bounds memory: the server keeps the raw logits of every generated
    token of a batch until it has read the sampled tokens' log-probs from them
    (batch x response length x vocabulary floats).
    """

    batching: bool = True
    window_ms: float = 20.0
    max_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.window_ms < 0 or self.max_batch_size < 1:
            raise ValueError(f"hf rollout batching: window_ms must be >= 0 and max_batch_size >= 1, got {self}")

    @classmethod
    def from_engine_kwargs(cls, engine_kwargs: Mapping[str, Any] | None) -> BatchingConfig:
        """Read ``engine_kwargs.hf``; an unknown key fails, naming the known ones."""
        values = dict((engine_kwargs or {}).get(ENGINE_KWARGS_KEY) or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown key(s) {unknown} in actor_rollout_ref.rollout.engine_kwargs.{ENGINE_KWARGS_KEY}; "
                           f"known keys are {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class SamplingSettings:
    """The sampling settings of one request; requests with equal settings may share a batch.

    ``temperature`` 0 is greedy. ``top_k`` 0 means off (veRL's -1 is mapped to 0).
    """

    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any], defaults: Any) -> SamplingSettings:
        """A request's ``sampling_params`` over the rollout config's defaults."""
        top_k = int(params.get("top_k", defaults.top_k))
        return cls(
            temperature=float(params.get("temperature", defaults.temperature)),
            top_p=float(params.get("top_p", defaults.top_p)),
            top_k=top_k if top_k > 0 else 0,
            repetition_penalty=float(params.get("repetition_penalty", 1.0)),
        )

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    @property
    def batchable(self) -> bool:
        """Whether left padding leaves the result unchanged. The repetition penalty reads every
        token of the input, pad tokens included, so such requests are generated one by one."""
        return self.repetition_penalty == 1.0

    @property
    def logit_scale(self) -> float:
        """What the logits are divided by for the log-probs: the actor's ``logits / temperature``."""
        return self.temperature if self.do_sample else 1.0

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``transformers`` ``generate()`` for these settings."""
        kwargs: dict[str, Any] = {"repetition_penalty": self.repetition_penalty}
        if self.do_sample:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:
            kwargs.update(do_sample=False)
        return kwargs


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids and attention masks, padded on the left to the longest prompt."""
    width = max(len(p) for p in prompts)
    ids = [[pad_id] * (width - len(p)) + list(p) for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    return ids, mask


def response_length(tokens: list[int], eos_ids: set[int], max_tokens: int) -> int:
    """Where one row of a batch ends: at its first EOS (kept), else at its own token budget.

    A batch generates until its longest row stops, padding the rows that stopped earlier;
    each row is cut back to what a lone ``generate()`` of that request would have returned.
    """
    for i, token in enumerate(tokens[:max_tokens]):
        if token in eos_ids:
            return i + 1
    return min(len(tokens), max_tokens)
