"""A tiny GRPO dataset in veRL's RLHF parquet schema, for CPU trainer runs.

Columns: ``prompt`` (chat messages), ``data_source``, ``reward_model`` {style,
ground_truth}, ``extra_info``. Prompts are short so they fit a 96-token budget with
the tiny model's tokenizer.
"""

from __future__ import annotations

from pathlib import Path

DATA_SOURCE = "tiny_query_rewrite"
SYSTEM = "Rewrite the request as a search query inside <answer> </answer>."
_REQUESTS = [
    ("light waterproof shoes for trail races", "trail running shoes"),
    ("which enzyme in saliva breaks down starch", "salivary amylase"),
    ("books on the history of navigation at sea", "navigation history books"),
    ("a quiet keyboard with brown switches", "mechanical keyboard brown switches"),
    ("lentil recipe with cumin in thirty minutes", "quick lentil cumin recipe"),
    ("papers on retrieval augmented generation", "retrieval augmented generation"),
    ("a USB-C cable that charges a 4K monitor", "usb-c monitor cable"),
    ("maps and compasses for the longitude problem", "longitude problem maps"),
]


def _rows(split: str, requests: list[tuple[str, str]]) -> list[dict]:
    return [
        {
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": request}],
            "reward_model": {"style": "rule", "ground_truth": target},
            "extra_info": {"split": split, "index": i},
        }
        for i, (request, target) in enumerate(requests)
    ]


def write_tiny_grpo_dataset(out_dir: Path | str) -> tuple[Path, Path]:
    """Write ``train.parquet`` (8 prompts) and ``val.parquet`` (2 prompts); return their paths."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, val = out / "train.parquet", out / "val.parquet"
    pd.DataFrame(_rows("train", _REQUESTS)).to_parquet(train)
    pd.DataFrame(_rows("test", _REQUESTS[:2])).to_parquet(val)
    return train, val
