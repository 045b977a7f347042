"""Run a search-agent checkpoint on task records: multi-turn episodes with the tool it was trained with.

The episode follows veRL's ``rec_search_agent`` loop turn by turn, for all records at once
(one generation batch per turn): a turn with a Hermes ``<tool_call>`` gets the tool's reply
(:mod:`verl_rec.agent.protocol`: the same argument checks, errors, result text and token
budget as in training; a call of another tool name gets veRL's "Unknown function" reply; only
the first call of a turn runs, as with ``max_parallel_calls: 1``), a turn without one is the
final answer, and the turn after ``max_searches`` tool replies is final whatever it holds.
Generation is greedy, each turn capped at ``max_new_tokens`` (training caps the whole episode
at ``response_length`` instead). The searches run on the evaluation's retriever in this process,
with result titles from the corpus (:class:`~verl_rec.retrieval.doc_texts.DocTexts`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from verl_rec.agent.episode import Episode, SearchCall
from verl_rec.agent.protocol import (
    SEARCH_TOOL_SCHEMA,
    TOOL_NAME,
    SearchCallError,
    check_call_budget,
    close_prefilled_call,
    parse_tool_calls,
    read_query,
    render_error,
    render_results,
)
from verl_rec.agent.tool_settings import SearchToolSettings
from verl_rec.errors import InputError
from verl_rec.tasks.formats import get_format
from verl_rec.tasks.records import TaskRecord

#: rendered prompts in, one completion per prompt out
Generate = Callable[[list[str]], list[str]]
#: queries and a depth in, per query its top hits as (id, short text)
SearchHits = Callable[[list[str], int], list[list[tuple[str, str]]]]


def local_search(retriever: Any, doc_texts: Any) -> SearchHits:
    """``SearchHits`` over a retriever and the corpus' short texts, in this process."""

    def search(queries: list[str], k: int) -> list[list[tuple[str, str]]]:
        return [[(doc, doc_texts.get(doc)) for doc in hits.ids[:k]] for hits in retriever.search(queries, k)]

    return search


@dataclass
class _Running:
    messages: list[dict[str, Any]]
    calls: list[SearchCall] = field(default_factory=list)
    tool_turns: int = 0
    final_text: str | None = None


def run_episodes(records: Sequence[TaskRecord], prompt_format: str, render: Callable[[list[dict]], str],
                 generate: Generate, search: SearchHits, settings: SearchToolSettings, max_searches: int,
                 count_tokens: Callable[[str], int]) -> list[Episode]:
    """One episode per record; ``render`` turns a conversation into the model's prompt text."""
    fmt = get_format(prompt_format)
    episodes = [_Running(messages=fmt.messages(r)) for r in records]
    for turn in range(max_searches + 1):
        active = [e for e in episodes if e.final_text is None]
        if not active:
            break
        # a pre-filled format starts the first turn inside the call and the turn after the last result
        # inside the answer, as the training loop does (verl_rec.integration.search_agent_loop)
        prefill = (fmt.search_prefill if turn == 0 else fmt.answer_prefill if turn == max_searches else None) or ""
        texts = generate([render(e.messages) + prefill for e in active])
        wanted: list[tuple[_Running, int, str]] = []  # (episode, call number, query) to search
        replies: dict[int, str] = {}
        for e, text in zip(active, texts):
            written = prefill + text  # what the turn says, its pre-fill included
            if turn == 0 and fmt.search_prefill:
                written = close_prefilled_call(written)
            _, calls = parse_tool_calls(written)
            if not calls or turn == max_searches:
                e.final_text = text  # the scored text continues the pre-fill, as in training
                continue
            e.messages.append({"role": "assistant", "content": written})
            e.tool_turns += 1
            call = calls[0]
            if call.name != TOOL_NAME:
                replies[id(e)] = f"Unknown function '{call.name}'. Available tools: ['{TOOL_NAME}']"
                continue
            number = len(e.calls) + 1
            try:
                check_call_budget(number, max_searches)
                wanted.append((e, number, read_query(call.arguments, settings)))
            except SearchCallError as error:
                e.calls.append(SearchCall(query=None, error=error.kind.value))
                replies[id(e)] = render_error(error, number, max_searches)
        if wanted:
            hits = search([query for _, _, query in wanted], settings.top_k)
            for (e, number, query), found in zip(wanted, hits):
                text, shown = render_results(found, number, max_searches, settings, count_tokens)
                e.calls.append(SearchCall(query=query, results=shown))
                replies[id(e)] = text
        for e in active:
            if id(e) in replies:
                e.messages.append({"role": "tool", "content": replies[id(e)]})
    return [Episode(final_text=e.final_text or "", calls=tuple(e.calls)) for e in episodes]


class ChatGenerator:
    """Greedy completions of chat prompts with one loaded model: vLLM when importable, else transformers."""

    def __init__(self, model_path: str, engine: str = "auto", max_new_tokens: int = 512, batch_size: int = 16,
                 max_model_len: int | None = None) -> None:
        from verl_rec.evaluation.generate import ENGINES, vllm_available

        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.engine = "vllm" if engine == "vllm" or (engine == "auto" and vllm_available()) else "transformers"
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        if self.engine == "vllm":
            from vllm import LLM

            self.llm = LLM(model=model_path, max_model_len=max_model_len, trust_remote_code=False)
            self.tokenizer = self.llm.get_tokenizer()
        else:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.device = "cuda" if torch.cuda.is_available() else "cpu"
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
            if self.tokenizer.pad_token is None:
                self.tokenizer.pad_token = self.tokenizer.eos_token
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()

    def render(self, messages: list[dict]) -> str:
        """The prompt text of a conversation, with the tool schema, as veRL renders it in training."""
        return self.tokenizer.apply_chat_template(messages, tools=[SEARCH_TOOL_SCHEMA], tokenize=False,
                                                  add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def __call__(self, prompts: list[str]) -> list[str]:
        if self.engine == "vllm":
            from vllm import SamplingParams

            results = self.llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens))
            return [r.outputs[0].text for r in results]
        return self._transformers(prompts)

    def _transformers(self, prompts: list[str]) -> list[str]:
        import torch
        from tqdm import tqdm

        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
        outputs = [""] * len(prompts)
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="generate", unit="batch", file=sys.stderr, mininterval=2, disable=len(starts) < 2):
            index = order[start:start + self.batch_size]
            batch = self.tokenizer([prompts[i] for i in index], return_tensors="pt", padding=True,
                                   add_special_tokens=False).to(self.device)
            with torch.no_grad():
                generated = self.model.generate(**batch, do_sample=False, max_new_tokens=self.max_new_tokens,
                                                pad_token_id=self.tokenizer.pad_token_id)
            new_tokens = generated[:, batch["input_ids"].shape[1]:]
            for i, text in zip(index, self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                outputs[i] = text
        return outputs


def tool_settings(tool_config: str) -> SearchToolSettings:
    """The search settings of a tool config yaml (the file ``multi_turn.tool_config_path`` names)."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(OmegaConf.load(tool_config), resolve=True)
    for tool in (config or {}).get("tools") or ():
        if str(tool.get("class_name", "")).endswith(".SearchTool"):
            options = {k: v for k, v in (tool.get("config") or {}).items() if k not in ("type", "retrieval")}
            return SearchToolSettings.from_mapping(options, where=tool_config)
    raise ValueError(f"{tool_config}: no verl_rec.integration.search_tool.SearchTool in its tools list")


def doc_text_path(doc_texts: str | None, index: str) -> str:
    """``--doc-texts``, else the corpus the index was built from (its metadata records it)."""
    if doc_texts:
        return doc_texts
    from verl_rec.retrieval.index_metadata import read_index_metadata

    corpus = (read_index_metadata(index) or {}).get("corpus_path")
    if not corpus:
        raise InputError(f"{index} does not record its corpus: give --doc-texts (the corpus JSONL) for the "
                         "titles an agent's searches show")
    return corpus


@dataclass(frozen=True)
class AgentRun:
    """How an agent checkpoint is run: the tool yaml, searches per episode, result titles, generation."""

    tool_config: str | None
    max_searches: int
    doc_texts: str | None
    max_new_tokens: int
    batch_size: int
    engine: str


def agent_model_outputs(records: Sequence[TaskRecord], model_path: str, prompt_format: str, run: AgentRun,
                        retriever: Any, index: str | None) -> tuple[dict[str, str], dict[str, Episode]]:
    """Run the agent checkpoint at ``model_path``: its final answers, and each record's episode."""
    from verl_rec.recipes import package_file
    from verl_rec.retrieval.doc_texts import DocTexts

    if retriever is None:
        raise InputError("an agent format searches: give --index (and --backend)")
    settings = tool_settings(run.tool_config or package_file("recipes/tools/search_tool.yaml"))
    doc_texts = DocTexts.from_corpus(doc_text_path(run.doc_texts, index))
    generator = ChatGenerator(model_path, engine=run.engine, max_new_tokens=run.max_new_tokens,
                              batch_size=run.batch_size)
    started = time.perf_counter()
    episodes = run_episodes(records, prompt_format, generator.render, generator, local_search(retriever, doc_texts),
                            settings, run.max_searches, generator.count_tokens)
    print(f"ran {len(episodes)} agent episodes with {generator.engine} in {time.perf_counter() - started:.1f}s",
          file=sys.stderr)
    return ({r.record_id: e.final_text for r, e in zip(records, episodes)},
            {r.record_id: e for r, e in zip(records, episodes)})
