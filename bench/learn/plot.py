"""learning.png: per system and seed, the training reward and the held-out NDCG@10 on seen and unseen phrasings."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(report: dict[str, Any], path: Path) -> Path:
    """One row per system: held-out NDCG@10 per seed (solid seen, dashed unseen; the raw request as grey
    lines), and the training reward per seed."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    systems = list(report["systems"])
    fig, axes = plt.subplots(len(systems), 2, figsize=(11, 3.6 * len(systems)), squeeze=False)
    raw = report["raw_query_val_ndcg@10"]
    for row, system in zip(axes, systems):
        ax_val, ax_reward = row
        for i, (seed, run) in enumerate(report["systems"][system]["seeds"].items()):
            color = f"C{i}"
            points = run["curve"]
            for split, style in (("seen", "s-"), ("unseen", "o--")):
                val = [(p["step"], p[f"val_{split}_ndcg@10"]) for p in points if f"val_{split}_ndcg@10" in p]
                ax_val.plot(*zip(*val), style, color=color, label=f"{seed}, {split}")
            train = [(p["step"], p["train_reward"]) for p in points if p["train_reward"] is not None]
            ax_reward.plot(*zip(*train), "o-", color=color, alpha=0.7, label=seed)
        for split, style in (("seen", "-"), ("unseen", "--")):
            ax_val.axhline(raw[split], color="gray", linestyle=style, linewidth=1, label=f"raw request, {split}")
        ax_val.set(xlabel="GRPO step", ylabel="held-out NDCG@10 (greedy)", title=f"{system}: held-out NDCG@10")
        ax_val.legend(fontsize=7, ncol=2)
        ax_reward.set(xlabel="GRPO step", ylabel="mean reward", title=f"{system}: training reward")
        ax_reward.legend(fontsize=7)
    fig.suptitle(f"{report['model']}: {report['command']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
