"""The "hf" rollout server: transformers ``generate()`` inside a Ray actor.

It speaks the token-in/token-out protocol veRL's agent loop uses with vLLM/SGLang
servers (``generate(prompt_ids, sampling_params, request_id) -> TokenOutput``), so
the stock agent loop, load balancer and trainer drive it unchanged. One request is
one sample: the agent loop fans ``rollout.n`` out into n requests.

What the v1 trainer relies on:
- ``log_probs`` of the sampled tokens, computed like the actor computes them
  (``log_softmax(logits / temperature)``) so rollout and actor are comparable;
- ``extra_fields["global_steps"]``: the weight version, set on every weight update;
- ``update_weights``: the actor's full state dict, loaded on every sync.
"""

from __future__ import annotations

import asyncio
from typing import Any

import torch


class HFRolloutServer:
    """One replica's model. Requests are served one at a time (a lock), off the event loop."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        self.config = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.global_steps: int | None = None
        self._lock = asyncio.Lock()

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
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

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
        async with self._lock:
            token_ids, log_probs = await asyncio.to_thread(self._sample, list(prompt_ids), params, max_tokens)
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs if params.get("logprobs") else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    def _max_new_tokens(self, prompt_len: int, params: dict[str, Any]) -> int:
        """Same budget rule as veRL's vLLM server: response_length, capped by the context."""
        requested = params.pop("max_tokens", None) or params.pop("max_new_tokens", None)
        budget = self.config.prompt_length + self.config.response_length - prompt_len
        max_tokens = requested if requested is not None else min(self.config.response_length, budget)
        return max(1, min(max_tokens, budget))

    @torch.no_grad()
    def _sample(self, prompt_ids: list[int], params: dict[str, Any], max_tokens: int) -> tuple[list[int], list[float]]:
        temperature = float(params.get("temperature", self.config.temperature))
        top_k = int(params.get("top_k", self.config.top_k))
        do_sample = temperature > 0
        sampling = (
            {
                "do_sample": True,
                "temperature": temperature,
                "top_p": float(params.get("top_p", self.config.top_p)),
                "top_k": top_k if top_k > 0 else 0,  # veRL's -1 means off; transformers uses 0
            }
            if do_sample
            else {"do_sample": False}
        )
        sampling["repetition_penalty"] = float(params.get("repetition_penalty", 1.0))
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_tokens,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
            **sampling,
        )
        tokens = out.sequences[0, input_ids.shape[1] :]
        logits = torch.stack(out.logits, dim=1)[0].float()  # raw logits, [T, vocab]
        scale = temperature if do_sample else 1.0
        log_probs = torch.log_softmax(logits / scale, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
        return tokens.tolist(), log_probs.tolist()

    # -- weight sync -----------------------------------------------------------------
    async def update_weights(self, state_dict: dict[str, torch.Tensor], global_steps: int | None = None) -> None:
        """Load the actor's weights; waits for the in-flight request, if any."""
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
