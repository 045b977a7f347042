"""The search agent below the trainer: protocol, tool, agent loop, token masks, episode reward.

The tool answers from a real :class:`RetrievalService` over a real bm25s index (in this process,
behind a stand-in for the Ray handle; the slow test uses the real Ray actor). The agent loop
is veRL's ``ToolAgentLoop`` machinery (our subclass), driven by a scripted LLM server so that
every generated token is known and the tool-output tokens can be located exactly.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import pytest

from verl_rec.agent.episode import CALLS_KEY, EPISODE_KEY, Episode, SearchCall, episode_from, last_turn_span
from verl_rec.agent.protocol import (
    CallError,
    SearchCallError,
    check_call_budget,
    parse_tool_calls,
    read_query,
    render_error,
    render_results,
    tool_call_text,
)
from verl_rec.agent.tool_settings import SearchToolSettings

SETTINGS = SearchToolSettings(top_k=3, result_tokens=96, max_query_words=8, max_query_chars=80)
PRODUCTS = [  # id, title, description
    ("P1", "Acme Wireless Controller Black", "gamepad for consoles"),
    ("P2", "Zenith Wired Controller Red", "gamepad with cable"),
    ("P3", "Orbit Stapler Heavy Duty", "office stapler"),
    ("P4", "Nimbus Yoga Mat Blue", "non slip mat"),
    ("P5", "Vertex Racing Wheel", "wheel and pedals for racing games"),
    ("P6", "Polar Desk Organizer", "office organizer with drawers"),
] + [(f"F{i}", f"Filler Product {i}", "generic words") for i in range(20)]
QRELS = json.dumps({"P1": 3.0, "P2": 1.0})


# ---------------------------------------------------------------------------------------------
# protocol
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, kind", [
    ("wireless controller", CallError.BAD_ARGUMENTS),  # a bare string
    (["wireless"], CallError.BAD_ARGUMENTS),
    ({}, CallError.BAD_ARGUMENTS),
    ({"q": "wireless"}, CallError.BAD_ARGUMENTS),
    ({"query": "wireless", "k": 5}, CallError.BAD_ARGUMENTS),
    ({"query": 42}, CallError.BAD_ARGUMENTS),
    ({"query": None}, CallError.BAD_ARGUMENTS),
    ({"query": ""}, CallError.EMPTY_QUERY),
    ({"query": " \n\t "}, CallError.EMPTY_QUERY),
    ({"query": " ".join(["word"] * 10_000)}, CallError.QUERY_TOO_LONG),
    ({"query": "x" * 100}, CallError.QUERY_TOO_LONG),
])
def test_bad_arguments_are_refused_with_a_named_reason(arguments, kind):
    with pytest.raises(SearchCallError) as caught:
        read_query(arguments, SETTINGS)
    assert caught.value.kind is kind
    text = render_error(caught.value, 1, 3)
    assert text.startswith(f"[search 1 of 3] error ({kind.value}):") and text.endswith("(2 searches left)")
    assert len(text) < 300  # a 10k-word query is not echoed back


def test_a_good_query_is_normalised():
    assert read_query({"query": "  wireless\n controller "}, SETTINGS) == "wireless controller"


def test_the_call_limit():
    check_call_budget(3, 3)
    check_call_budget(7, None)
    with pytest.raises(SearchCallError) as caught:
        check_call_budget(4, 3)
    assert caught.value.kind is CallError.LIMIT_REACHED
    assert "final answer" in render_error(caught.value, 4, 3)


def test_results_fit_the_token_budget_in_rank_order():
    hits = [(f"B{i:09d}", f"Brand Model {i} " + "word " * 12) for i in range(10)]
    count = lambda text: len(text.split())  # noqa: E731  (a word per token)
    settings = SearchToolSettings(top_k=10, result_tokens=60)
    text, shown = render_results(hits, 2, 3, settings, count)
    assert count(text) <= 60 and 0 < shown < 10
    lines = text.splitlines()
    assert lines[0] == "[search 2 of 3] results (id | title):" and lines[-1] == "(1 search left)"
    assert [line.split(".")[0] for line in lines[1:-1]] == [str(i) for i in range(1, shown + 1)]
    assert lines[-2].endswith("...")  # the last one shown lost words to fit
    full, all_shown = render_results(hits[:2], 3, 3, settings, count)
    assert all_shown == 2 and full.endswith("(no searches left: write your final answer now)")
    assert render_results([], 1, None, settings, count) == ("[search 1] no results", 0)


def test_tool_calls_are_parsed_as_verl_parses_hermes():
    text = "<think>x</think>\n" + tool_call_text("red pen") + "\n<tool_call>{broken</tool_call><tool_call>[1]</tool_call>"
    content, calls = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in calls] == [("search", {"query": "red pen"})]
    assert "<tool_call>" not in content
    assert parse_tool_calls('<answer>{"query": "x"}</answer>') == ('<answer>{"query": "x"}</answer>', [])
    _, odd = parse_tool_calls('<tool_call>{"name": "search", "arguments": "red pen"}</tool_call>')
    assert odd[0].arguments == "red pen"  # reaches the tool, which refuses it


def test_settings_name_an_unknown_key():
    with pytest.raises(KeyError, match="top_kk"):
        SearchToolSettings.from_mapping({"top_kk": 3})
    with pytest.raises(ValueError, match="result_tokens"):
        SearchToolSettings(result_tokens=0)


def test_episode_round_trip_and_final_turn():
    episode = Episode("<answer/>", (SearchCall("a b", results=3), SearchCall(None, CallError.EMPTY_QUERY.value)), 10, 20)
    assert Episode.from_dict(json.loads(json.dumps(episode.to_dict()))) == episode
    assert (episode.searches, episode.errors, episode.first_query) == (1, 1, "a b")
    assert episode_from({EPISODE_KEY: episode.to_dict()}) == episode and episode_from({}) is None
    assert last_turn_span([1, 1, 0, 0, 1, 1, 1, 0]) == (4, 7)
    assert last_turn_span([1, 1]) == (0, 2) and last_turn_span([0, 0]) == (0, 0)


# ---------------------------------------------------------------------------------------------
# the tool, against a real service in this process
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory):
    from verl_rec.retrieval.bm25s.build import build_bm25s_index

    folder = tmp_path_factory.mktemp("agent_corpus")
    corpus = folder / "corpus.jsonl"
    with corpus.open("w") as handle:
        for doc_id, title, description in PRODUCTS:
            handle.write(json.dumps({"id": doc_id, "contents": f"{title}\n{description}"}) + "\n")
    return corpus, build_bm25s_index(corpus, folder / "index", progress=False)


@pytest.fixture(scope="module")
def service_config(corpus_index):
    from verl_rec.retrieval.service.config import ServiceConfig

    corpus, index = corpus_index
    return ServiceConfig(backend="bm25s", index_path=str(index), doc_text_path=str(corpus), batch_window_ms=1)


class _Method:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        return self.fn(*args)


class LocalHandle:
    """Stands in for the service's Ray actor handle: the calls go to a real service object."""

    def __init__(self, service):
        self.service = service
        self.hits_many = _Method(service.hits_many)
        self.target_positions_many = _Method(service.target_positions_many)


@pytest.fixture
def service(service_config):
    from verl_rec.retrieval.service.actor import RetrievalService

    return RetrievalService(service_config)


class AgentData:  # the part of veRL's AgentData the tool uses
    def __init__(self):
        self.extra_fields = {}


def make_tool(service, max_calls=3, settings=SETTINGS):
    from verl_rec.integration.search_tool import SearchTool

    tool = SearchTool({"type": "native", **settings.__dict__})
    tool.bind(service.config, None, max_calls)
    tool.client._handle = LocalHandle(service)
    return tool


def test_the_service_returns_ids_and_titles_through_its_batching_path(service):
    async def scenario():
        return await asyncio.gather(service.hits_many([("wireless controller", 2), ("stapler", 1)]),
                                    service.hits_many([("wireless controller", 2), (123, 2)]))

    (first, second) = asyncio.run(scenario())
    assert first[0] == [["P1", "Acme Wireless Controller Black"], ["P2", "Zenith Wired Controller Red"]]
    assert first[1] == [["P3", "Orbit Stapler Heavy Duty"]]
    assert second[0] == first[0] and isinstance(second[1], RuntimeError)  # a bad request fails alone
    info = service.info()
    assert info["batches"] == 1 and info["deduplicated"] >= 1  # one engine batch, the repeat answered once


def test_search_calls_do_not_wait_for_a_batch_window(service_config):
    """A reward burst waits for its batch window; a search call that finds the engine free runs at
    once, and calls sent together form one batch."""
    import time

    from verl_rec.retrieval.service.actor import RetrievalService

    service = RetrievalService(type(service_config)(**{**service_config.__dict__, "batch_window_ms": 300}))

    async def timed(coro):
        started = time.perf_counter()
        await coro
        return time.perf_counter() - started

    async def scenario():
        search = await timed(service.hits_many([("stapler", 3)]))
        reward = await timed(service.target_positions_many([("yoga mat", 10, ["P4"])]))
        burst = await asyncio.gather(*(service.hits_many([(q, 3)]) for q in ("controller", "wireless controller",
                                                                          "black controller", "acme", "wireless")))
        return search, reward, burst

    search, reward, burst = asyncio.run(scenario())
    assert search < 0.15 and reward >= 0.25, (search, reward)
    assert all(answer[0][0] == ["P1", "Acme Wireless Controller Black"] for answer in burst)
    assert service.info()["batch_sizes"] == [1, 1, 5]  # calls sent together still leave as one batch


def test_a_service_without_document_texts_says_which_key_to_set(service_config):
    from verl_rec.retrieval.service.actor import RetrievalService

    bare = RetrievalService(type(service_config)(backend="bm25s", index_path=service_config.index_path))
    answers = asyncio.run(bare.hits_many([("stapler", 2)]))
    assert isinstance(answers[0], RuntimeError) and "doc_text_path" in str(answers[0])


def test_the_tool_answers_good_and_bad_calls_and_records_them(service):
    tool = make_tool(service, max_calls=3)
    data = AgentData()

    async def call(arguments):
        response, reward, metrics = await tool.execute("id", arguments, agent_data=data)
        return response.text

    async def scenario():
        good = await call({"query": "wireless controller"})
        empty = await call({"query": "   "})
        huge = await call({"query": " ".join(["controller"] * 10_000)})
        over = await call({"query": "stapler"})
        return good, empty, huge, over

    good, empty, huge, over = asyncio.run(scenario())
    assert good.splitlines()[:3] == ["[search 1 of 3] results (id | title):", "1. P1 | Acme Wireless Controller Black",
                                     "2. P2 | Zenith Wired Controller Red"]
    assert good.endswith("(2 searches left)")
    assert "error (empty_query)" in empty and "error (query_too_long)" in huge and "10000 words" in huge
    assert "error (limit_reached)" in over and "final answer" in over
    calls = [SearchCall.from_dict(c) for c in data.extra_fields[CALLS_KEY]]
    assert [c.error for c in calls] == ["", "empty_query", "query_too_long", "limit_reached"]
    assert calls[0].query == "wireless controller" and calls[0].results == 2  # only two products match


def test_a_failing_service_is_a_tool_error_not_a_crash(service):
    tool = make_tool(service)

    class Broken:
        class hits_many:  # noqa: N801
            @staticmethod
            def remote(*args):
                raise ConnectionError("actor died")

    tool.client._handle = Broken()
    tool.client._resolve_handle = lambda: Broken()
    data = AgentData()
    response, _, metrics = asyncio.run(tool.execute("id", {"query": "stapler"}, agent_data=data))
    assert "error (retrieval_failed)" in response.text and metrics == {"ok": False}
    assert data.extra_fields[CALLS_KEY] == [{"query": "stapler", "error": "retrieval_failed", "results": 0}]


class DeadService:
    """A service whose every call fails, as a killed actor's handle does."""

    def __init__(self, config):
        self.config = config

    def hits_many(self, *args):
        raise ConnectionError("the actor died unexpectedly before finishing this task")

    target_positions_many = hits_many


def test_engine_failures_are_counted_and_a_run_of_them_marks_the_service_down(service):
    from verl_rec.agent.episode import RETRIEVAL_FAILED
    from verl_rec.integration.search_tool import FAILURE_LIMIT_KEY, SearchEngineDown

    assert CallError.RETRIEVAL_FAILED.value == RETRIEVAL_FAILED
    settings = SearchToolSettings(**{**SETTINGS.__dict__, "max_consecutive_failures": 3})
    tool = make_tool(service, max_calls=10, settings=settings)
    alive, dead = LocalHandle(service), LocalHandle(DeadService(service.config))
    data = AgentData()

    async def call(handle, query="stapler", arguments=None):
        tool.client._handle = handle
        tool.client._resolve_handle = lambda: handle  # the lookup after a failure finds the same state
        response, _, _ = await tool.execute("id", arguments or {"query": query}, agent_data=data)
        return response.text

    async def scenario():
        texts = [await call(dead), await call(dead)]
        texts.append(await call(alive))  # a served call ends the run of failures
        texts.append(await call(dead, arguments={"query": ""}))  # the policy's error: not the service's
        texts += [await call(dead), await call(dead)]
        tool.check_up()  # 2 in a row: still up
        texts.append(await call(dead))
        return texts

    texts = asyncio.run(scenario())
    assert "error (retrieval_failed)" in texts[0] and "1. P3 | Orbit Stapler Heavy Duty" in texts[2]
    assert tool.consecutive_failures == 3
    with pytest.raises(SearchEngineDown, match=rf"failed 3 search calls in a row.*{FAILURE_LIMIT_KEY} \(now 3\)"):
        tool.check_up()
    episode = Episode("x", tuple(SearchCall.from_dict(c) for c in data.extra_fields[CALLS_KEY]))
    assert (episode.engine_failures, episode.errors, episode.searches) == (5, 6, 1)
    extra = score(service, episode).extra
    assert (extra["search_failures"], extra["search_errors"]) == (5.0, 6.0)  # the step's metrics show it
    with pytest.raises(ValueError, match="max_consecutive_failures"):
        SearchToolSettings(max_consecutive_failures=0)


def test_the_tool_needs_document_texts_to_bind(corpus_index):
    from verl_rec.integration.search_tool import SearchTool
    from verl_rec.retrieval.service.config import ServiceConfig

    tool = SearchTool({"type": "native"})
    with pytest.raises(KeyError, match="doc_text_path"):
        tool.bind(ServiceConfig(backend="bm25s", index_path=str(corpus_index[1])), None, 3)
    with pytest.raises(KeyError, match="top_kk"):
        SearchTool({"type": "native", "top_kk": 3})


# ---------------------------------------------------------------------------------------------
# the agent loop (veRL's ToolAgentLoop machinery) with a scripted LLM server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from verl_rec.devkit.agent_warmup import agent_corpus
    from verl_rec.devkit.tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), vocab_size=1024, extra_corpus=agent_corpus())
    return AutoTokenizer.from_pretrained(path)


def trainer_config(service_config, max_user_turns=2, response_length=1024, tool_yaml=None, recipe="esci_bm25_agent"):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from verl_rec.recipes import RECIPES_DIR

    overrides = ["hydra.searchpath=[pkg://verl.trainer.config]", "data.max_prompt_length=512",
                 f"data.max_response_length={response_length}",
                 f"actor_rollout_ref.rollout.multi_turn.max_user_turns={max_user_turns}"]
    if tool_yaml:
        overrides.append(f"actor_rollout_ref.rollout.multi_turn.tool_config_path={tool_yaml}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES_DIR), version_base=None):
        cfg = compose(config_name=recipe, overrides=overrides)
    OmegaConf.resolve(cfg)
    cfg.reward.reward_kwargs.retrieval = {k: v for k, v in service_config.__dict__.items() if v is not None}
    return cfg


class ScriptedServer:
    """veRL's LLM server client, answering each generate() with the next scripted turn."""

    def __init__(self, tokenizer, turns):
        self.tokenizer, self.turns, self.generated, self.requests = tokenizer, list(turns), [], []

    async def generate(self, request_id, prompt_ids, sampling_params, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        self.requests.append((list(prompt_ids), dict(sampling_params)))
        text = self.turns[min(len(self.generated), len(self.turns) - 1)]
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        self.generated.append(ids)
        return TokenOutput(token_ids=ids, log_probs=[-1.0] * len(ids), stop_reason="completed",
                           extra_fields={"global_steps": 0})


def run_episode(cfg, tokenizer, service, turns, query="wireless controller", resolve=None, prompt_format="bm25_agent"):
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
    from verl.tools.tool_registry import initialize_tools_from_config
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from verl_rec.integration.search_agent_loop import SearchAgentLoop
    from verl_rec.tasks.formats import get_format
    from verl_rec.tasks.records import TaskRecord

    tools = initialize_tools_from_config(cfg.actor_rollout_ref.rollout.multi_turn.tool_config_path)
    server = ScriptedServer(tokenizer, turns)
    record = TaskRecord("r1", "esci/test", "search", json.loads(QRELS), query=query)

    async def scenario():
        loop = SearchAgentLoop(trainer_config=DictConfigWrap(cfg), server_manager=server, tokenizer=tokenizer,
                               processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(cfg.data),
                               hf_model_type="qwen2", tools=ToolListWrap(tools))
        tools[0].client._handle = LocalHandle(service)
        if resolve is not None:  # what the client finds when it looks the service up again
            tools[0].client._resolve_handle = resolve
        return await loop.run({"temperature": 1.0}, raw_prompt=get_format(prompt_format).messages(record),
                              extra_info={"prompt_format": prompt_format})

    return asyncio.run(scenario()), server


def small_tool_yaml(tmp_path) -> Path:
    path = tmp_path / "tool.yaml"
    config = {"type": "native", **SETTINGS.__dict__}
    path.write_text(json.dumps({"tools": [{"class_name": "verl_rec.integration.search_tool.SearchTool", "config": config}]}))
    return path


CALL = "<think>look</think>\n" + tool_call_text("wireless controller")
ANSWER = '<think>done</think>\n<answer>{"query": "acme wireless controller"}</answer>'


def test_tool_output_tokens_are_exactly_the_masked_ones(tokenizer, service, service_config, tmp_path):
    cfg = trainer_config(service_config, max_user_turns=2, tool_yaml=small_tool_yaml(tmp_path))
    output, server = run_episode(cfg, tokenizer, service, [CALL, CALL.replace("wireless", "wired"), ANSWER])
    ids, mask = list(output.response_ids), list(output.response_mask)
    assert len(server.generated) == 3 and len(ids) == len(mask)
    # every policy token is masked 1 and nothing else is: the 1-runs are exactly the generated turns
    runs, start = [], None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append(ids[start:i])
            start = None
    assert runs == server.generated
    # the 0-runs between turns are the tool outputs (with the chat template's turn markers around them)
    gaps = tokenizer.decode([t for t, m in zip(ids, mask) if not m], skip_special_tokens=False)
    assert "[search 1 of 2] results (id | title):" in gaps and "1. P1 | Acme Wireless Controller Black" in gaps
    assert "[search 2 of 2]" in gaps and "(no searches left: write your final answer now)" in gaps
    assert "<tool_call>" not in gaps and "<answer>" not in gaps

    episode = episode_from(output.extra_fields)
    assert episode.final_text.startswith(ANSWER) and [c.query for c in episode.calls] == ["wireless controller",
                                                                                          "wired controller"]
    assert (episode.policy_tokens, episode.context_tokens) == (sum(mask), len(mask) - sum(mask))
    assert output.extra_fields["tool_call_counts"] == 2 and CALLS_KEY not in output.extra_fields


def test_a_prefilled_agent_searches_in_its_first_turn_and_answers_inside_the_answer(tokenizer, service, service_config,
                                                                                     tmp_path):
    """bm25_literature_agent: the first turn continues the pre-filled call, the final turn the
    pre-filled answer (masked 0, like the tool's text); both parse, and each turn is capped."""
    from verl_rec.tasks.formats import SEARCH_CALL_PREFILL, SHORT_ANSWER_PREFILL

    tool_yaml = tmp_path / "tool.yaml"
    config = {"type": "native", **SETTINGS.__dict__, "turn_tokens": 24}
    tool_yaml.write_text(json.dumps({"tools": [{"class_name": "verl_rec.integration.search_tool.SearchTool", "config": config}]}))
    cfg = trainer_config(service_config, max_user_turns=1, tool_yaml=tool_yaml)
    turns = ['acme wireless"}}\nand some chatter, no closing tag', 'acme wireless controller"}</answer>']
    output, server = run_episode(cfg, tokenizer, service, turns, prompt_format="bm25_literature_agent")
    first_prompt = tokenizer.decode(server.requests[0][0], skip_special_tokens=False)
    assert first_prompt.endswith(SEARCH_CALL_PREFILL) and len(server.generated) == 2
    assert [params["max_tokens"] for _, params in server.requests] == [24, 24]
    episode = episode_from(output.extra_fields)
    assert [c.query for c in episode.calls] == ["acme wireless"] and episode.searches == 1
    assert episode.final_text.startswith(turns[1])
    ids, mask = list(output.response_ids), list(output.response_mask)
    prefill = tokenizer.encode(SHORT_ANSWER_PREFILL, add_special_tokens=False)
    final_start = len(mask) - len(server.generated[1])
    assert ids[final_start - len(prefill):final_start] == prefill and not any(mask[final_start - len(prefill):final_start])
    result = score(service, episode, prompt_format="bm25_literature_agent")
    assert result.extra["format_ok"] == 1.0 and result.extra["search_calls"] == 1.0 and result.score > 0


def test_the_quickstart_vaswani_agent_recipe_runs_its_prefilled_episodes_through_its_own_tool_config(
        tokenizer, service, service_config):
    """quickstart_vaswani_agent as composed: one search, 5 titles, 32 new tokens a turn, the format's pre-fills."""
    cfg = trainer_config(service_config, max_user_turns=1, response_length=192, recipe="quickstart_vaswani_agent")
    assert cfg.data.prompt_format == "bm25_literature_agent" and cfg.data.max_response_length == 192
    turns = ['wireless controller"}}', 'acme wireless controller"}</answer>']
    output, server = run_episode(cfg, tokenizer, service, turns, prompt_format="bm25_literature_agent")
    assert [params["max_tokens"] for _, params in server.requests] == [32, 32]
    episode = episode_from(output.extra_fields)
    assert [c.query for c in episode.calls] == ["wireless controller"] and 1 <= episode.calls[0].results <= 5
    assert score(service, episode, prompt_format="bm25_literature_agent").extra["format_ok"] == 1.0


def test_a_prefilled_agent_whose_call_is_malformed_gets_no_answer_prefill(tokenizer, service, service_config, tmp_path):
    cfg = trainer_config(service_config, max_user_turns=1, tool_yaml=small_tool_yaml(tmp_path))
    output, server = run_episode(cfg, tokenizer, service, ["acme wireless and then some chatter"],
                                 prompt_format="bm25_literature_agent")
    episode = episode_from(output.extra_fields)
    assert len(server.generated) == 1 and episode.calls == ()
    assert "max_tokens" not in server.requests[0][1]  # no turn_tokens in this tool config: no cap
    result = score(service, episode, prompt_format="bm25_literature_agent")
    assert result.extra["format_ok"] == 0.0


def test_after_t_searches_the_next_turn_is_final(tokenizer, service, service_config, tmp_path):
    """A policy that keeps calling: T calls are served, the turn after the T-th result ends the
    episode, and its (tool-call) text is the final answer: malformed, format penalty."""
    cfg = trainer_config(service_config, max_user_turns=2, tool_yaml=small_tool_yaml(tmp_path))
    output, server = run_episode(cfg, tokenizer, service, [CALL])
    episode = episode_from(output.extra_fields)
    assert len(server.generated) == 3 and episode.searches == 2
    assert "<tool_call>" in episode.final_text
    result = score(service, episode)
    assert result.score == -2.0 and result.extra["format_ok"] == 0.0 and result.extra["search_calls"] == 2.0


def test_a_malformed_call_block_ends_the_episode_with_the_format_penalty(tokenizer, service, service_config, tmp_path):
    cfg = trainer_config(service_config, max_user_turns=2, tool_yaml=small_tool_yaml(tmp_path))
    output, server = run_episode(cfg, tokenizer, service, ['<tool_call>{"name": "search", "arguments": {"query": </tool_call>'])
    episode = episode_from(output.extra_fields)
    assert len(server.generated) == 1 and episode.calls == ()
    assert score(service, episode).score == -2.0


def test_bad_calls_inside_an_episode_reach_the_policy_as_errors(tokenizer, service, service_config, tmp_path):
    cfg = trainer_config(service_config, max_user_turns=3, tool_yaml=small_tool_yaml(tmp_path))
    bad_json_arguments = '<tool_call>{"name": "search", "arguments": "wireless"}</tool_call>'
    unknown_tool = '<tool_call>{"name": "browse", "arguments": {"url": "x"}}</tool_call>'
    output, server = run_episode(cfg, tokenizer, service, [bad_json_arguments, unknown_tool, tool_call_text(""), ANSWER])
    text = tokenizer.decode(output.response_ids, skip_special_tokens=False)
    assert "error (bad_arguments)" in text and "Unknown function 'browse'" in text and "error (empty_query)" in text
    episode = episode_from(output.extra_fields)
    assert [c.error for c in episode.calls] == ["bad_arguments", "empty_query"]  # veRL answers the unknown tool itself
    assert score(service, episode).extra["format_ok"] == 1.0


def test_a_dead_service_stops_the_agent_loop_loudly(tokenizer, service, service_config, tmp_path):
    """Every search failing: episodes go on (each call answered with the error) until the run of
    failures reaches max_consecutive_failures; then the loop raises, naming the key."""
    from verl_rec.integration.search_tool import SearchEngineDown

    path = tmp_path / "tool.yaml"
    config = {"type": "native", **SETTINGS.__dict__, "max_consecutive_failures": 2}
    path.write_text(json.dumps({"tools": [{"class_name": "verl_rec.integration.search_tool.SearchTool", "config": config}]}))
    cfg = trainer_config(service_config, max_user_turns=3, tool_yaml=path)
    dead = DeadService(service_config)
    output, server = run_episode(cfg, tokenizer, dead, [CALL, ANSWER], resolve=lambda: LocalHandle(dead))
    episode = episode_from(output.extra_fields)  # one failed call: the episode ends normally
    assert [c.error for c in episode.calls] == ["retrieval_failed"]
    with pytest.raises(SearchEngineDown, match="failed 2 search calls in a row.*max_consecutive_failures"):
        run_episode(cfg, tokenizer, dead, [CALL, CALL, ANSWER], resolve=lambda: LocalHandle(dead))


def test_the_loop_refuses_a_config_without_the_search_tool_or_a_call_limit(tokenizer, service, service_config, tmp_path):
    empty = tmp_path / "none.yaml"
    empty.write_text("tools: []\n")
    with pytest.raises(ValueError, match="tool_config_path"):
        run_episode(trainer_config(service_config, tool_yaml=empty), tokenizer, service, [ANSWER])
    cfg = trainer_config(service_config, tool_yaml=small_tool_yaml(tmp_path))
    cfg.actor_rollout_ref.rollout.multi_turn.max_user_turns = None
    with pytest.raises(ValueError, match="max_user_turns"):
        run_episode(cfg, tokenizer, service, [ANSWER])


def test_warm_up_sequences_match_the_agent_loop_tokens(tokenizer, service, service_config, tmp_path):
    """The dev-kit warm-up trains on the token sequence veRL's agent loop builds at run time."""
    from verl_rec.devkit.agent_warmup import episode_tokens
    from verl_rec.tasks.formats import get_format
    from verl_rec.tasks.records import TaskRecord

    cfg = trainer_config(service_config, max_user_turns=2, tool_yaml=small_tool_yaml(tmp_path))
    output, _ = run_episode(cfg, tokenizer, service, [CALL, ANSWER])
    gap = tokenizer.decode([t for t, m in zip(output.response_ids, output.response_mask) if not m],
                           skip_special_tokens=False)
    reply = gap.split("<|im_start|>tool\n", 1)[1].split("<|im_end|>", 1)[0]  # the tool's text, as the loop got it
    record = TaskRecord("r1", "esci/test", "search", json.loads(QRELS), query="wireless controller")
    ids, mask = episode_tokens(tokenizer, get_format("bm25_agent").messages(record), [(CALL, reply), (ANSWER, None)])
    assert ids == list(output.prompt_ids) + list(output.response_ids)
    assert mask == [0] * len(output.prompt_ids) + list(output.response_mask)


# ---------------------------------------------------------------------------------------------
# the episode's reward, through the one scorer and the reward manager
# ---------------------------------------------------------------------------------------------


def score(service, episode, search_cost=0.0, prompt_format="bm25_agent"):
    from verl_rec.qrels import parse_qrels
    from verl_rec.reward.episode import score_episode
    from verl_rec.reward.reward_kwargs import RewardSettings
    from verl_rec.reward.scorer import ServiceScorer
    from verl_rec.tasks.formats import get_format

    settings = RewardSettings.from_mapping({"metric": "ndcg@10", "search_cost": search_cost})
    scorer = ServiceScorer(settings, service=LocalPositions(service))
    return asyncio.run(score_episode(scorer, episode, parse_qrels(QRELS), get_format(prompt_format)))


class LocalPositions:
    def __init__(self, service):
        self.service = service

    async def target_positions(self, query, k, targets):
        return await self.service.target_positions(query, k, targets)


def test_the_episode_reward_follows_the_contract(service):
    answer = lambda q: f'<think>t</think>\n<answer>{json.dumps({"query": q})}</answer>'  # noqa: E731
    searched = (SearchCall("stapler", results=3), SearchCall("wireless controller", results=3))
    good = score(service, Episode(answer("wireless controller"), searched, 50, 80))
    assert 0.1 < good.score <= 1.1 and good.score == pytest.approx(0.1 + good.extra["ndcg@10"])
    assert good.extra["searches"] == 2.0 and good.extra["first_search_ndcg@10"] == 0.0  # "stapler" finds neither
    assert (good.extra["policy_tokens"], good.extra["tool_tokens"]) == (50.0, 80.0)
    zero = score(service, Episode(answer("yoga mat"), ()))
    assert zero.score == 0.0 and zero.extra["search_calls"] == 0.0
    assert score(service, Episode("no tags at all", searched)).score == -2.0
    costly = score(service, Episode(answer("wireless controller"), searched), search_cost=0.05)
    assert costly.score == pytest.approx(good.score - 0.1)
    assert score(service, Episode("no tags", searched), search_cost=0.05).score == -2.0  # the penalty stays -2
    assert set(good.extra) == set(zero.extra)  # veRL needs the same keys for every sample


def test_a_negative_search_cost_is_refused():
    from verl_rec.reward.reward_kwargs import RewardSettings

    with pytest.raises(ValueError, match="search_cost"):
        RewardSettings.from_mapping({"search_cost": -1})


def test_the_reward_manager_scores_the_final_turn_of_an_agent_sample(service_config, service, tokenizer):
    """What veRL's reward loop hands the manager for an agent-loop sample: the whole multi-turn
    response, plus the loop's extra_fields under ``tool_extra_fields``."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl import DataProto

    from verl_rec.integration.reward_manager import RecR1RewardManager

    config = OmegaConf.create({"reward": {"reward_kwargs": {"metric": "ndcg@10", "retrieval": {
        k: v for k, v in service_config.__dict__.items() if v is not None}}}})
    manager = RecR1RewardManager(config, tokenizer)
    manager.scorer.service._handle = LocalHandle(service)
    episode = Episode('<think>t</think>\n<answer>{"query": "wireless controller"}</answer>',
                      (SearchCall("stapler", results=3),), 10, 30)
    response = tokenizer.encode("call <tool_call> tool output " + episode.final_text)  # NOT what is scored
    data = DataProto.from_dict(
        tensors={"prompts": torch.ones(1, 4, dtype=torch.long), "responses": torch.tensor([response]),
                 "attention_mask": torch.ones(1, 4 + len(response), dtype=torch.long)},
        non_tensors={"reward_model": np.array([{"ground_truth": QRELS}], dtype=object),
                     "extra_info": np.array([{"prompt_format": "bm25_agent"}], dtype=object),
                     "tool_extra_fields": np.array([{EPISODE_KEY: episode.to_dict()}], dtype=object)})
    out = asyncio.run(manager.run_single(data))
    assert out["reward_score"] == pytest.approx(0.1 + out["reward_extra_info"]["ndcg@10"]) and out["reward_score"] > 0.1
    assert out["reward_extra_info"]["searches"] == 1.0

    config.data = {"prompt_format": "bm25_agent"}
    with pytest.raises(ValueError, match="rec_search_agent"):
        RecR1RewardManager(config, tokenizer)


# ---------------------------------------------------------------------------------------------
# through the real service (a Ray actor)
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_calls_through_the_real_service_actor(service_config):
    """Concurrent good and bad calls from one worker: the real Ray service answers the good
    ones in one batch, every bad one is a tool error, and nothing raises."""
    ray = pytest.importorskip("ray")
    from verl_rec.integration.search_tool import SearchTool

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="vra_", dir="/tmp"),
             runtime_env={"env_vars": {"PYTHONPATH": ":".join(sys.path)}})
    try:
        config = type(service_config)(**{**service_config.__dict__, "name": "agent_tool_test", "batch_window_ms": 20})
        tool = SearchTool({"type": "native", **SETTINGS.__dict__})
        tool.bind(config, None, 2)
        episodes = [AgentData() for _ in range(4)]
        calls = [{"query": "wireless controller"}, {"query": ""}, {"query": "word " * 10_000}, "not an object"]

        async def scenario():
            first = await asyncio.gather(*(tool.execute("i", c, agent_data=d) for c, d in zip(calls, episodes)))
            second = await asyncio.gather(*(tool.execute("i", {"query": "stapler"}, agent_data=d) for d in episodes))
            third = await tool.execute("i", {"query": "yoga"}, agent_data=episodes[0])
            return first, second, third, await tool.client.info()

        first, second, third, info = asyncio.run(scenario())
        texts = [r.text for r, _, _ in first]
        assert "1. P1 | Acme Wireless Controller Black" in texts[0]
        assert "empty_query" in texts[1] and "query_too_long" in texts[2] and "bad_arguments" in texts[3]
        assert all("1. P3 | Orbit Stapler Heavy Duty" in r.text for r, _, _ in second)
        assert "limit_reached" in third[0].text
        assert info["pid"] > 0 and info["deduplicated"] >= 3  # the four "stapler" calls: one engine query
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_a_killed_service_is_counted_then_stops_the_tool(service_config, corpus_index, tmp_path):
    """The real actor, killed for good (its index gone, so the service cannot come back): each
    search is a retrieval_failed answer, and the limit's run of them marks the service down."""
    import shutil

    ray = pytest.importorskip("ray")
    from verl_rec.integration.search_tool import SearchEngineDown, SearchTool

    index = shutil.copytree(service_config.index_path, tmp_path / "index")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="vrk_", dir="/tmp"),
             runtime_env={"env_vars": {"PYTHONPATH": ":".join(sys.path)}})
    try:
        config = type(service_config)(**{**service_config.__dict__, "name": "agent_tool_dead", "index_path": str(index)})
        tool = SearchTool({"type": "native", **SETTINGS.__dict__, "max_consecutive_failures": 3})
        tool.bind(config, None, 10)
        data = AgentData()

        async def scenario():
            served = await tool.execute("i", {"query": "stapler"}, agent_data=data)
            handle = await tool.client._service()
            shutil.rmtree(index)  # a restarted service would not find its index
            ray.kill(handle, no_restart=True)
            failed = [await tool.execute("i", {"query": "stapler"}, agent_data=data) for _ in range(3)]
            return served, failed

        served, failed = asyncio.run(scenario())
        assert "1. P3 | Orbit Stapler Heavy Duty" in served[0].text
        assert all("error (retrieval_failed)" in r.text and m == {"ok": False} for r, _, m in failed)
        assert [c["error"] for c in data.extra_fields[CALLS_KEY]] == ["", "retrieval_failed", "retrieval_failed",
                                                                      "retrieval_failed"]
        with pytest.raises(SearchEngineDown, match="max_consecutive_failures"):
            tool.check_up()
    finally:
        ray.shutdown()


def test_a_prefilled_call_is_read_up_to_the_end_of_its_json_object():
    from verl_rec.agent.protocol import close_prefilled_call, parse_tool_calls
    from verl_rec.tasks.formats import SEARCH_CALL_PREFILL

    closed = close_prefilled_call(SEARCH_CALL_PREFILL + 'plasma \\"arc\\" temperature"}}\nThe engine replies...')
    assert closed == tool_call_text('plasma "arc" temperature')
    assert [c.arguments for c in parse_tool_calls(closed)[1]] == [{"query": 'plasma "arc" temperature'}]
    for unchanged in (SEARCH_CALL_PREFILL + "never closes the string", SEARCH_CALL_PREFILL + 'x"}} ok </tool_call>',
                      "no call at all", SEARCH_CALL_PREFILL.replace("{", "[", 1) + 'x"]'):
        assert close_prefilled_call(unchanged) == unchanged
