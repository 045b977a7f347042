"""Evaluation reports: a markdown table per task (metrics x100, as the paper prints them), CSVs, a bar chart.

The CSVs keep the metrics as fractions in [0, 1] with full precision (for scripts and
significance tests); the markdown table is for reading.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SUMMARY_COLUMNS = ("system", "task", "data_source", "n")
TRAILING_COLUMNS = ("format_failures", "format_failure_rate", "missing_outputs", "retrieval_errors", "mean_query_words")


def metric_label(spec: str) -> str:
    name, _, k = spec.partition("@")
    return {"ndcg": "NDCG", "recall": "Recall", "mrr": "MRR"}.get(name, name) + f"@{k}"


def markdown(summary: Sequence[Mapping[str, Any]], metrics: Mapping[str, Sequence[str]]) -> str:
    """One table per task; metrics x100 with two decimals, failure rate in %, mean answer length."""
    blocks = []
    for task in sorted({row["task"] for row in summary}):
        specs = list(metrics[task])
        length = "items" if task == "rerank" else "query words"  # a re-ranked list's length, a query's words
        searches = any("mean_searches" in row for row in summary if row["task"] == task)  # an agent evaluation
        header = ["system", "data_source", "n", *(metric_label(m) for m in specs), "format fail %", length,
                  *(["searches/query"] if searches else [])]
        lines = [f"**{task}** (metrics x100)", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
        for row in (r for r in summary if r["task"] == task):
            words = row["mean_query_words"]
            cells = [row["system"], row["data_source"], str(row["n"]), *(f"{100 * row[m]:.2f}" for m in specs),
                     f"{100 * row['format_failure_rate']:.1f}", "-" if math.isnan(words) else f"{words:.1f}",
                     *([f"{row.get('mean_searches', 0.0):.2f}"] if searches else [])]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> Path:
    """Rows with possibly different keys: the union of columns, ``first`` ones first."""
    columns = list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def bar_chart(path: str | Path, summary: Sequence[Mapping[str, Any]], metrics: Mapping[str, Sequence[str]],
              metric: str | None = None) -> Path:
    """Grouped bars: data sources on x, one bar per system; one panel per task (its first metric unless ``metric``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({row["task"] for row in summary})
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(6, 4 * len(tasks)), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        spec = metric if metric and metric in metrics[task] else metrics[task][0]
        rows = [r for r in summary if r["task"] == task]
        sources = list(dict.fromkeys(r["data_source"] for r in rows))
        systems = list(dict.fromkeys(r["system"] for r in rows))
        width = 0.8 / max(1, len(systems))
        for i, system in enumerate(systems):
            values = {r["data_source"]: 100 * r[spec] for r in rows if r["system"] == system}
            xs = [j + i * width - 0.4 + width / 2 for j in range(len(sources))]
            ax.bar(xs, [values.get(s, 0.0) for s in sources], width=width, label=system)
        ax.set_xticks(range(len(sources)))
        ax.set_xticklabels([s.split("/")[-1] for s in sources], rotation=30, ha="right")
        ax.set_ylabel(f"{metric_label(spec)} (x100)")
        ax.set_title(task)
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
