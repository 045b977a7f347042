"""verl-rec's reward manager for veRL 0.9's reward loop: decode, then score with the one scorer.

Per rollout: look the row's prompt format up and parse its ground truth (once each), decode
the response, then :class:`~verl_rec.reward.scorer.ServiceScorer` checks the format, asks the
node's retrieval service for the target positions and computes the Rec-R1 score, with a FIXED
set of numeric ``reward_extra_info`` keys (:mod:`verl_rec.reward.contract`). Loadable as
``reward.reward_manager: {source: register, name: rec_r1}`` (registered by the plugin) or
``{source: importlib, name: RecR1RewardManager, module: {path: pkg://verl_rec.integration.reward_manager}}``;
settings from ``reward.reward_kwargs`` (:class:`~verl_rec.reward.reward_kwargs.RewardSettings`).

What the rollout really did decides how the output is read: the end of the prompt is decoded,
and an output whose prompt ended with an opened ``<think>`` is read as its continuation. A
format whose pre-fill the prompt does not end with is logged once (the rollout ran another
agent loop than the format's). A searching format's sample is scored on its episode's final
turn (:mod:`verl_rec.reward.episode`).
"""

from __future__ import annotations

import logging

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from verl_rec.agent.episode import episode_from
from verl_rec.qrels import parse_qrels
from verl_rec.retrieval.service.client import RetrievalClient
from verl_rec.reward.episode import score_episode
from verl_rec.reward.parsing import THINK_OPEN
from verl_rec.reward.scorer import ServiceScorer
from verl_rec.tasks.formats import DEFAULT_FORMAT, FORMATS, PromptFormat, get_format

MANAGER_NAME = "rec_r1"
#: prompt tokens decoded to see how a prompt without a pre-fill ended
PROMPT_TAIL_TOKENS = 16

logger = logging.getLogger(__name__)

def agent_loop_hint(fmt: PromptFormat) -> str:
    return (f"prompt format {fmt.name!r} runs in the {fmt.agent_loop} agent loop: "
            f"set actor_rollout_ref.rollout.agent.default_agent_loop={fmt.agent_loop}")


def check_agent_loop(config) -> None:
    """A searching prompt format needs its agent loop for every row (veRL's ``default_agent_loop``):
    fail at start-up, not on the first sample. An unknown name is the dataset's error to raise."""
    fmt = FORMATS.get((config.get("data") or {}).get("prompt_format") or DEFAULT_FORMAT)
    agent = ((config.get("actor_rollout_ref") or {}).get("rollout") or {}).get("agent") or {}
    if fmt is not None and fmt.searches and agent.get("default_agent_loop") != fmt.agent_loop:
        raise ValueError(f"data.prompt_format={fmt.name}: {agent_loop_hint(fmt)}")


@register(MANAGER_NAME)
class RecR1RewardManager(RewardManagerBase):
    """Scores one sample per call against the shared retrieval service."""

    def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score)
        self.scorer = ServiceScorer.from_reward_kwargs(config.reward.get("reward_kwargs"))
        check_agent_loop(config)
        if isinstance(self.scorer.service, RetrievalClient):  # a GPU engine without a free GPU fails the job now
            self.scorer.service.check_can_start()
        self._warned_formats: set[str] = set()

    def prompt_opens_think(self, item, fmt: PromptFormat) -> bool:
        """Did this rollout's prompt end with an opened ``<think>``, or with the format's whole
        pre-fill that opens one? (veRL left-pads prompts.)

        Read off the prompt, not the format: a chat template may open ``<think>`` itself, and a
        recipe may run another agent loop than the format's, which leaves its pre-fill out. A
        pre-fill may go on past ``<think>`` (``bm25_literature_short`` opens the answer too:
        ``FormatSpec.prefill_after_think``); a prompt that ends with all of it opened ``<think>``."""
        prefill = fmt.assistant_prefill or ""
        n_tokens = PROMPT_TAIL_TOKENS + len(prefill.encode("utf-8"))  # a token holds at least one byte
        tail = self.tokenizer.decode(item.batch["prompts"][-n_tokens:], skip_special_tokens=False)
        opened = tail.rstrip().endswith(THINK_OPEN) or bool(fmt.think_prefilled and tail.endswith(prefill))
        if prefill and not tail.endswith(prefill) and fmt.name not in self._warned_formats:
            self._warned_formats.add(fmt.name)
            logger.warning("verl-rec: prompt format %r pre-fills %r, but this rollout's prompt ends with %r: the "
                           "rollout did not render the pre-fill (agent loop %r does); outputs are read as they are",
                           fmt.name, prefill, tail[-40:], fmt.agent_loop)
        return opened

    async def run_single(self, data: DataProto) -> dict:
        item = data[-1:][0]
        responses = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-responses.shape[-1]:].sum())
        # Decoded inline, not in a thread as veRL's naive manager does: a thread hand-off per
        # sample spreads a worker's samples over many loop ticks, so the retrieval client would
        # send them in several Ray calls instead of one. Special tokens are kept and stripped by
        # the parser, whatever the tokenizer calls special.
        text = self.tokenizer.decode(responses[:valid], skip_special_tokens=False)
        extra_info = item.non_tensor_batch.get("extra_info") or {}
        fmt = get_format(extra_info.get("prompt_format", DEFAULT_FORMAT))  # the one look-up of this sample
        qrels = parse_qrels(item.non_tensor_batch["reward_model"]["ground_truth"])  # the one parse
        # an agent episode (verl_rec.agent): its final turn is the answer; its calls are logged
        episode = episode_from(item.non_tensor_batch.get("tool_extra_fields") or item.non_tensor_batch)
        if episode is not None:
            result = await score_episode(self.scorer, episode, qrels, fmt)
            return {"reward_score": result.score, "reward_extra_info": dict(result.extra)}
        if fmt.searches:
            raise ValueError(f"a {fmt.name!r} sample without an agent episode: {agent_loop_hint(fmt)}")
        candidates = extra_info.get("candidate_ids")
        result = await self.scorer.score_output(text, qrels, fmt,
                                                candidates=None if candidates is None else list(candidates),
                                                think_prefilled=self.prompt_opens_think(item, fmt))
        return {"reward_score": result.score, "reward_extra_info": dict(result.extra)}
