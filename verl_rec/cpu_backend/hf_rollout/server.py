"""The "hf" rollout server: transformers ``generate()`` inside a Ray actor.

It speaks the token-in/token-out protocol veRL's agent loop uses with vLLM/SGLang
servers (``generate(prompt_ids, sampling_params, request_id) -> TokenOutput``), so
the stock agent loop, load balancer and trainer drive it unchanged. One request is
one sample: the agent loop fans ``rollout.n`` out into n requests, all at once. The server
collects the requests of a short window and generates those with equal sampling settings as
one left-padded batch (:mod:`~verl_rec.cpu_backend.hf_rollout.batching`).

What the v1 trainer relies on:
- ``log_probs`` of the sampled tokens, computed like the actor computes them
  (``log_softmax(logits / temperature)``) so rollout and actor are comparable;
- ``extra_fields["global_steps"]``: the weight version, set on every weight update;
- ``update_packed_weights``: the actor's full state dict as one flat buffer, loaded on every
  sync (``update_weights`` takes a plain state dict).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch

from verl_rec.cpu_backend.hf_rollout.batching import BatchingConfig, SamplingSettings, left_pad, response_length
from verl_rec.cpu_backend.hf_rollout.weight_buffer import TensorSlot, unpack


@dataclass
class _Request:
    prompt_ids: list[int]
    max_tokens: int
    arrived: float
    done: asyncio.Future = field(repr=False)


@dataclass(frozen=True)
class _Generated:
    token_ids: list[int]
    log_probs: list[float]
    global_steps: int | None


class HFRolloutServer:
    """One replica's model. Generation runs off the event loop; a lock keeps it apart from weight loads."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        self.config = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.global_steps: int | None = None
        self.batching = BatchingConfig.from_engine_kwargs(self.config.engine_kwargs)
        self._lock = asyncio.Lock()
        self._pending: dict[SamplingSettings, list[_Request]] = defaultdict(list)
        self._dispatcher: asyncio.Task | None = None

        dtype = getattr(torch, self.config.dtype) if isinstance(self.config.dtype, str) else self.config.dtype
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_config.local_path,
            config=self.model_config.hf_config,
            dtype=dtype,
            trust_remote_code=self.model_config.trust_remote_code,
        ).eval()
        tokenizer = self.model_config.tokenizer
        generation_config = self.model_config.generation_config
        eos = generation_config.eos_token_id if generation_config is not None else None
        self.eos_token_id = eos if eos is not None else tokenizer.eos_token_id  # int or list, as HF allows
        self.eos_ids = set(self.eos_token_id) if isinstance(self.eos_token_id, (list, tuple)) else {self.eos_token_id}
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        # Seeded as veRL seeds vLLM (replica_rank + rollout.seed): runs that differ only in
        # actor_rollout_ref.rollout.seed sample differently; the same seed samples the same.
        torch.manual_seed(int(self.config.seed) + replica_rank)

    # -- generation ------------------------------------------------------------------
    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        **_unused: Any,  # image/video/audio data, priority: not supported by this backend
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        params = dict(sampling_params)
        max_tokens = self._max_new_tokens(len(prompt_ids), params)
        settings = SamplingSettings.from_params(params, self.config)
        request = _Request(list(prompt_ids), max_tokens, time.monotonic(), asyncio.get_running_loop().create_future())
        if self.batching.batching and settings.batchable:
            self._pending[settings].append(request)
            if self._dispatcher is None or self._dispatcher.done():
                self._dispatcher = asyncio.create_task(self._dispatch())
        else:
            await self._run([request], settings)
        generated: _Generated = await request.done
        return TokenOutput(
            token_ids=generated.token_ids,
            log_probs=generated.log_probs if params.get("logprobs") else None,
            stop_reason="completed",
            extra_fields={"global_steps": generated.global_steps},
        )

    def _max_new_tokens(self, prompt_len: int, params: dict[str, Any]) -> int:
        """Same budget rule as veRL's vLLM server: response_length, capped by the context."""
        requested = params.pop("max_tokens", None) or params.pop("max_new_tokens", None)
        budget = self.config.prompt_length + self.config.response_length - prompt_len
        max_tokens = requested if requested is not None else min(self.config.response_length, budget)
        return max(1, min(max_tokens, budget))

    async def _dispatch(self) -> None:
        """Serve pending requests, oldest group first, each group once its window has passed."""
        window_s = self.batching.window_ms / 1000
        while self._pending:
            settings = min(self._pending, key=lambda s: self._pending[s][0].arrived)
            wait = self._pending[settings][0].arrived + window_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # let the rest of the burst arrive
            group = self._pending[settings]
            batch, rest = group[: self.batching.max_batch_size], group[self.batching.max_batch_size :]
            if rest:
                self._pending[settings] = rest
            else:
                del self._pending[settings]
            await self._run(batch, settings)

    async def _run(self, requests: list[_Request], settings: SamplingSettings) -> None:
        """Generate ``requests`` as one batch and resolve their futures (with the error, if it fails)."""
        try:
            async with self._lock:
                rows = await asyncio.to_thread(
                    self._sample, [r.prompt_ids for r in requests], settings, [r.max_tokens for r in requests]
                )
                steps = self.global_steps  # the weights these rows were sampled from
        except Exception as exc:  # every waiting request gets the error, and the dispatcher goes on
            for r in requests:
                if not r.done.done():
                    r.done.set_exception(exc)
            return
        for r, (tokens, log_probs) in zip(requests, rows):
            if not r.done.done():  # a cancelled request (aborted by the agent loop) is skipped
                r.done.set_result(_Generated(tokens, log_probs, steps))

    @torch.no_grad()
    def _sample(
        self, prompts: list[list[int]], settings: SamplingSettings, max_tokens: list[int]
    ) -> list[tuple[list[int], list[float]]]:
        """One left-padded ``generate()``; per row the sampled tokens and their log-probs.

        The log-probs are read from the raw logits one step at a time, so that no
        ``[batch, tokens, vocab]`` tensor is ever stacked.
        """
        ids, mask = left_pad(prompts, self.pad_token_id)
        input_ids, attention_mask = torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max(max_tokens),
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
            **settings.generate_kwargs(),
        )
        tokens = out.sequences[:, input_ids.shape[1] :]
        log_probs = torch.empty(tokens.shape, dtype=torch.float32)
        for step, logits in enumerate(out.logits):  # raw logits, [batch, vocab]
            step_log_probs = torch.log_softmax(logits.float() / settings.logit_scale, dim=-1)
            log_probs[:, step] = step_log_probs.gather(-1, tokens[:, step : step + 1]).squeeze(-1)
        rows = []
        for row, budget in zip(range(tokens.shape[0]), max_tokens):
            row_tokens = tokens[row].tolist()
            length = response_length(row_tokens, self.eos_ids, budget)
            rows.append((row_tokens[:length], log_probs[row, :length].tolist()))
        return rows

    # -- weight sync -----------------------------------------------------------------
    async def update_weights(self, state_dict: dict[str, torch.Tensor], global_steps: int | None = None) -> None:
        """Load the actor's weights; waits for the batch being generated, if any."""
        async with self._lock:
            result = self.model.load_state_dict(state_dict, strict=False)
            tied = {"lm_head.weight"} if self.model.config.tie_word_embeddings else set()
            missing = set(result.missing_keys) - tied
            if missing or result.unexpected_keys:
                raise RuntimeError(
                    f"hf rollout: weight sync mismatch, missing={sorted(missing)[:5]} "
                    f"unexpected={sorted(result.unexpected_keys)[:5]}"
                )
            if global_steps is not None:
                self.global_steps = global_steps

    async def update_packed_weights(self, buffer: Any, slots: list[TensorSlot], global_steps: int | None = None) -> None:
        """``update_weights`` from one flat buffer (Ray hands it over in place, from its object store)."""
        await self.update_weights(unpack(buffer, slots), global_steps)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def ready(self) -> bool:
        return True

    # -- lifecycle calls veRL makes on every server; the HF model stays resident ------
    async def wake_up(self, tags: list[str] | None = None) -> None:
        pass

    async def sleep(self) -> None:
        pass

    async def clear_kv_cache(self) -> None:
        pass

    async def release_kv_cache(self) -> None:
        pass

    async def resume_kv_cache(self) -> None:
        pass

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        pass

    async def start_profile(self, **kwargs: Any) -> None:
        pass

    async def stop_profile(self) -> None:
        pass
