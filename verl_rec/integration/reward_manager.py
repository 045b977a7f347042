"""verl-rec's reward manager for veRL 0.9's reward loop.

Data flow per rollout: decode -> check the format the prompt asked for -> ask the node's
retrieval service for the target positions -> metric -> Rec-R1 score. Returns a FIXED set of
numeric ``reward_extra_info`` keys (see :mod:`verl_rec.reward.scoring`); veRL puts the score on
the last valid response token. Loadable two ways:

* ``reward.reward_manager: {source: register, name: rec_r1}`` (registered by the
  ``verl.plugins`` entry point on every ``import verl``), or
* ``{source: importlib, name: RecR1RewardManager, module: {path: pkg://verl_rec.integration.reward_manager}}``.

Settings come from ``reward.reward_kwargs`` (:class:`~verl_rec.reward.settings.RewardSettings`).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from verl_rec.metrics import first_positions
from verl_rec.retrieval.service.client import RetrievalClient
from verl_rec.reward.parsing import FormatSpec, ParsedOutput, parse_output
from verl_rec.reward.scoring import RewardResult, parse_ground_truth, score_parsed
from verl_rec.reward.settings import RewardSettings
from verl_rec.tasks.formats import get_format

logger = logging.getLogger(__name__)

MANAGER_NAME = "rec_r1"


@register(MANAGER_NAME)
class RecR1RewardManager(RewardManagerBase):
    """Scores one sample per call against the shared retrieval service."""

    def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score)
        self.settings = RewardSettings.from_mapping(config.reward.get("reward_kwargs"))
        self.client = RetrievalClient(self.settings.retrieval) if self.settings.retrieval else None
        self._format_specs: dict[str, FormatSpec] = {}

    def format_spec(self, prompt_format: str) -> FormatSpec:
        """The spec of the format the dataset rendered, with the recipe's caps applied (built
        once per format: this runs for every sample)."""
        spec = self._format_specs.get(prompt_format)
        if spec is None:
            base = get_format(prompt_format).spec
            spec = self._format_specs[prompt_format] = FormatSpec(
                answer_key=base.answer_key,
                require_think=base.require_think,
                think_prefilled=self.settings.think_prefilled,
                max_query_words=self.settings.max_query_words,
            )
        return spec

    async def _positions(self, parsed: ParsedOutput, spec: FormatSpec, qrels: dict) -> Optional[dict[str, int]]:
        depth = self.settings.reward.depth
        if spec.answer_key != "query":  # re-ranking: the model's list is the ranking
            return first_positions(parsed.answer, qrels, depth)
        if self.client is None:
            raise KeyError("reward.reward_kwargs.retrieval is required for query-writing formats")
        try:
            return await self.client.target_positions(parsed.answer, depth, list(qrels))
        except Exception:
            logger.exception("verl-rec: retrieval failed for query %r", parsed.answer[:200])
            return None

    async def score_text(self, text: str, ground_truth: Any, prompt_format: str) -> RewardResult:
        spec = self.format_spec(prompt_format)
        qrels = parse_ground_truth(ground_truth)
        parsed = parse_output(text, spec)
        found = await self._positions(parsed, spec, qrels) if parsed.ok else None
        return score_parsed(parsed, found, qrels, self.settings.reward)

    async def run_single(self, data: DataProto) -> dict:
        item = data[-1:][0]
        responses = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-responses.shape[-1]:].sum())
        # Decoded here, not in a thread as veRL's naive manager does: a response decodes in
        # ~50 us (160 tokens; ~200 us for 1024), and a thread hand-off per sample spreads a
        # worker's samples over many loop ticks, so the retrieval client sent them in several
        # Ray calls, the stragglers after the first call returned (veRL's reward loop, 2
        # workers, 640 samples: 3-4 engine batches per step, now one call per worker).
        # Special tokens are kept and stripped by the parser, whatever the tokenizer calls special.
        text = self.tokenizer.decode(responses[:valid], skip_special_tokens=False)
        extra_info = item.non_tensor_batch.get("extra_info") or {}
        prompt_format = extra_info.get("prompt_format", "bm25_query")
        ground_truth = item.non_tensor_batch["reward_model"]["ground_truth"]
        result = await self.score_text(text, ground_truth, prompt_format)
        return {"reward_score": result.score, "reward_extra_info": dict(result.extra)}
