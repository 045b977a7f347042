"""``data.custom_cls`` for verl-rec task records: the prompt is rendered at load time.

The parquet files hold task records (:mod:`verl_rec.tasks.records`), not prompts, so the
recipe's ``data.prompt_format`` can change the wording without re-preprocessing. Each row
gains veRL's columns: ``prompt`` (chat messages), ``reward_model`` (``ground_truth`` = the
qrels JSON string, kept intact by Arrow) and ``extra_info`` (``index``, ``record_id``,
``prompt_format``: the reward manager checks the format named there; re-ranking formats add
``candidate_ids``, the prompt's item ids, which the answer must be a permutation of). A format
with a pre-filled assistant turn (the ``paper_*`` formats) also sets ``agent_name`` to the
format's ``agent_loop`` (``verl_rec_prefill``, the loop that renders it); the over-long prompt
filter then counts the pre-fill's tokens too. A searching format's loop is the recipe's
``default_agent_loop`` (checked at start-up by the reward manager).

Recipe::

    data:
      custom_cls: {path: pkg://verl_rec.integration.dataset, name: RecTaskDataset}
      prompt_format: bm25_query
"""

from __future__ import annotations

import datasets
import pyarrow.parquet as pq
from verl.utils.dataset.rl_dataset import RLHFDataset

from verl_rec.tasks.formats import DEFAULT_FORMAT, get_format
from verl_rec.tasks.records import REQUIRED_COLUMNS, TaskRecord


def check_columns(path: str) -> None:
    """Fail early, naming the file and the missing columns, before any row is read."""
    try:
        names = set(pq.read_schema(path).names)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read as parquet ({exc}); build it with python -m verl_rec.data_preprocess.<dataset>") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; verl-rec task records need {list(REQUIRED_COLUMNS)}")


def render_row(row: dict, index: int, prompt_format: str, source: str) -> dict:
    """veRL's columns for one task record."""
    record = TaskRecord.from_row(row, where=f"{source} row {index}")
    fmt = get_format(prompt_format)
    extra_info = {"index": index, "record_id": record.record_id, "prompt_format": fmt.name, "split": record.split}
    if fmt.answer_key == "reranked_items":
        extra_info["candidate_ids"] = [c.id for c in record.candidates]
    columns = {
        "prompt": fmt.messages(record),
        "reward_model": {"style": "rule", "ground_truth": row["qrels"]},
        "extra_info": extra_info,
    }
    if fmt.assistant_prefill:  # only its agent loop renders the pre-fill
        columns["agent_name"] = fmt.agent_loop
    return columns


class RecTaskDataset(RLHFDataset):
    """veRL's RLHF dataset over verl-rec task records."""

    def _read_files_and_tokenize(self) -> None:
        prompt_format = self.config.get("prompt_format", DEFAULT_FORMAT) or DEFAULT_FORMAT
        get_format(prompt_format)  # unknown name: fail before reading data
        frames = []
        for path in self.data_files:
            check_columns(path)
            frame = datasets.load_dataset("parquet", data_files=path)["train"]
            keep = [c for c in frame.column_names if c not in ("prompt", "reward_model", "extra_info", "agent_name")]
            # never from datasets' cache: its fingerprint sees render_row and its arguments, not the
            # format's wording, so an edited prompt would come back in its old words
            frame = frame.select_columns(keep).map(
                render_row, with_indices=True, fn_kwargs={"prompt_format": prompt_format, "source": path},
                load_from_cache_file=False,
            )
            frames.append(frame)
        self.dataframe = datasets.concatenate_datasets(frames)
        if 0 < self.max_samples < len(self.dataframe):
            self.dataframe = self.dataframe.select(range(self.max_samples))
        print(f"verl-rec dataset: {len(self.dataframe)} records, prompt format {prompt_format!r}")
        fmt = get_format(prompt_format)
        self.dataframe = self._filter_long_prompts(fmt.assistant_prefill or fmt.search_prefill)

    def _filter_long_prompts(self, prefill: str | None) -> datasets.Dataset:
        """veRL's over-long prompt filter, with room left for the pre-fill the agent loop appends."""
        room = len(self.tokenizer.encode(prefill, add_special_tokens=False)) if prefill else 0
        self.max_prompt_length -= room
        try:
            return self.maybe_filter_out_long_prompts(self.dataframe)
        finally:
            self.max_prompt_length += room
