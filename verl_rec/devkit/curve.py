"""The quickstart's learning curve as a PNG next to its log: what a step-by-step line cannot show.

Per GRPO step, the training rollouts' mean reward and NDCG@10; the held-out NDCG@10 at each
validation; the raw request's held-out NDCG@10 as the line to beat.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def plot_curve(train: Mapping[int, Mapping[str, float]], heldout: Mapping[int, float], raw: float,
               path: Path, title: str) -> Path:
    """``train``: {step: {"reward", "ndcg"}}; ``heldout``: {step: NDCG@10}. Writes ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    fig, (ax_ndcg, ax_reward) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = sorted(train)
    ax_ndcg.plot(steps, [train[s]["ndcg"] for s in steps], "o-", color="tab:blue", alpha=0.5,
                 label="training rollouts")
    held = sorted(heldout)
    ax_ndcg.plot(held, [heldout[s] for s in held], "s-", color="tab:green", label="held-out (greedy)")
    ax_ndcg.axhline(raw, color="tab:gray", linestyle="--", label="held-out, raw request")
    ax_ndcg.set(xlabel="GRPO step", ylabel="NDCG@10", title="NDCG@10")
    ax_ndcg.legend(fontsize=8)
    ax_reward.plot(steps, [train[s]["reward"] for s in steps], "o-", color="tab:orange")
    ax_reward.set(xlabel="GRPO step", ylabel="mean reward", title="training reward")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
