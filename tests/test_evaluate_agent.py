"""``verl_rec.evaluate`` with an agent format: episodes with the training tool, scored on the final answer.

The episodes run against a real bm25s index and the corpus titles; the policy is scripted
(what each turn writes is chosen by the test) so that the episode rules can be checked one by
one. The real generator (transformers, a trained tiny agent) runs in ``test_agent_trainer.py``.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from verl_rec.agent.protocol import tool_call_text
from verl_rec.agent.tool_settings import SearchToolSettings
from verl_rec.tasks.records import TaskRecord

PRODUCTS = [("P1", "Acme Wireless Controller Black"), ("P2", "Zenith Wired Controller Red"),
            ("P3", "Orbit Stapler Heavy Duty"), ("P4", "Nimbus Yoga Mat Blue")] + [(f"F{i}", f"Filler {i}") for i in range(12)]
RECORDS = [TaskRecord("q1", "esci/Video_Games", "search", {"P1": 3.0}, query="controller", split="test"),
           TaskRecord("q2", "esci/Office_Products", "search", {"P3": 3.0}, query="stapler", split="test"),
           TaskRecord("q3", "esci/Office_Products", "search", {"P4": 3.0}, query="mat", split="test")]


def answer(query: str) -> str:
    return f'<think>t</think>\n<answer>{json.dumps({"query": query})}</answer>'


class Scripted:
    """A policy whose turns are given per record (by a word of its prompt), and what it was shown."""

    engine = "scripted"

    def __init__(self, scripts):
        self.scripts = scripts
        self.seen: dict[str, list[str]] = {key: [] for key in scripts}

    def render(self, messages):
        return json.dumps(messages)

    def count_tokens(self, text):
        return len(text.split())

    def __call__(self, prompts):
        outputs = []
        for prompt in prompts:
            messages = json.loads(prompt)
            key = next(k for k in self.scripts if f'"{k}"' in messages[1]["content"])
            turn = sum(1 for m in messages if m["role"] == "assistant")
            self.seen[key].append(messages[-1]["content"])
            outputs.append(self.scripts[key][min(turn, len(self.scripts[key]) - 1)])
        return outputs


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from verl_rec.data_preprocess import build_index

    folder = tmp_path_factory.mktemp("eval_agent")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "contents": f"{t}\nsome description"}) + "\n" for i, t in PRODUCTS))
    assert build_index.main(["--corpus", str(corpus), "--backend", "bm25s", "--index", str(folder / "index"), "--quiet"]) == 0
    records = folder / "test.parquet"
    pd.DataFrame([r.to_row() for r in RECORDS]).to_parquet(records)
    return folder


SCRIPTS = {
    "controller": [tool_call_text("wireless controller"), answer("acme wireless controller")],  # search, then answer
    "stapler": [tool_call_text("stapler")],  # never stops calling: the turn after the 2nd result is final
    "mat": ['<tool_call>{"name": "browse", "arguments": {}}</tool_call>', tool_call_text(""), answer("yoga mat")],
}


def test_episodes_follow_the_training_loop_rules(catalog):
    from verl_rec.evaluation.agent import local_search, run_episodes
    from verl_rec.retrieval.doc_texts import DocTexts
    from verl_rec.retrieval.registry import open_retriever

    policy = Scripted(SCRIPTS)
    retriever = open_retriever("bm25s", str(catalog / "index"))
    episodes = run_episodes(RECORDS, "bm25_agent", policy.render, policy, local_search(retriever, DocTexts.from_corpus(
        catalog / "corpus.jsonl")), SearchToolSettings(top_k=2), 2, policy.count_tokens)
    controller, stapler, mat = episodes
    assert controller.final_text == answer("acme wireless controller") and controller.searches == 1
    assert policy.seen["controller"][1].splitlines()[:2] == ["[search 1 of 2] results (id | title):",
                                                             "1. P1 | Acme Wireless Controller Black"]
    assert stapler.searches == 2 and "<tool_call>" in stapler.final_text  # the 3rd turn is final, whatever it holds
    assert "(no searches left: write your final answer now)" in policy.seen["stapler"][2]
    assert [c.error for c in mat.calls] == ["empty_query"] and mat.final_text == answer("yoga mat")
    assert policy.seen["mat"][1] == "Unknown function 'browse'. Available tools: ['search']"


def test_the_cli_reports_searches_per_query_next_to_the_raw_baseline(catalog, tmp_path, monkeypatch):
    import verl_rec.evaluation.agent as agent_eval
    from verl_rec import evaluate

    monkeypatch.setattr(agent_eval, "ChatGenerator", lambda *args, **kwargs: Scripted(SCRIPTS))
    out = tmp_path / "out"
    assert evaluate.main(["--records", str(catalog / "test.parquet"), "--backend", "bm25s", "--index",
                          str(catalog / "index"), "--raw", "--model", f"agent={catalog}", "--prompt-format",
                          "bm25_agent", "--max-searches", "2", "--doc-texts", str(catalog / "corpus.jsonl"),
                          "--metrics", "ndcg@10", "--out", str(out)]) == 0
    table = (out / "results.md").read_text()
    assert "searches/query" in table
    summary = {(r["system"], r["data_source"]): r for r in json.loads((out / "results.json").read_text())["summary"]}
    assert summary[("agent", "ALL")]["mean_searches"] == pytest.approx((1 + 2 + 0) / 3)
    assert summary[("raw", "ALL")]["mean_searches"] == 0.0
    assert summary[("agent", "esci/Video_Games")]["ndcg@10"] == 1.0  # the final answer finds P1 first
    assert summary[("agent", "ALL")]["format_failures"] == 1  # the episode that never answered
    episodes = [json.loads(line) for line in (out / "episodes_agent.jsonl").read_text().splitlines()]
    assert [len(e["calls"]) for e in episodes] == [1, 2, 1]


def test_the_cli_needs_document_texts_for_an_agent(catalog, tmp_path, monkeypatch, capsys):
    import verl_rec.evaluation.agent as agent_eval
    from verl_rec import evaluate

    monkeypatch.setattr(agent_eval, "ChatGenerator", lambda *args, **kwargs: Scripted(SCRIPTS))
    code = evaluate.main(["--records", str(catalog / "test.parquet"), "--backend", "bm25s", "--index",
                          str(catalog / "index"), "--model", f"agent={catalog}", "--prompt-format", "bm25_agent",
                          "--out", str(tmp_path / "out")])
    assert code == 0  # the index built by build_index records its corpus: the titles come from there
    index = tmp_path / "index"
    shutil.copytree(catalog / "index", index)
    meta = json.loads((index / "verl_rec_index.json").read_text())
    (index / "verl_rec_index.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "corpus_path"}))
    code = evaluate.main(["--records", str(catalog / "test.parquet"), "--backend", "bm25s", "--index", str(index),
                          "--model", f"agent={catalog}", "--prompt-format", "bm25_agent", "--out", str(tmp_path / "out2")])
    assert code == 2 and "--doc-texts" in capsys.readouterr().err


def test_a_prefilled_agent_format_starts_its_turns_as_training_does(catalog):
    """bm25_literature_agent: the first prompt ends inside a search call, the turn after the last result
    inside the answer; the call is parsed with its pre-fill, the final text is the answer's continuation."""
    from verl_rec.evaluation.agent import local_search, run_episodes
    from verl_rec.retrieval.doc_texts import DocTexts
    from verl_rec.retrieval.registry import open_retriever
    from verl_rec.tasks.formats import SEARCH_CALL_PREFILL, SHORT_ANSWER_PREFILL

    prefills, turns = [], ['wireless controller"}}\n</tool_call>', 'acme wireless controller"}</answer>']

    def generate(prompts):
        out = []
        for prompt in prompts:
            cut = prompt.rindex("]") + 1  # render() is the JSON list of messages; the pre-fill follows it
            prefills.append(prompt[cut:])
            out.append(turns[sum(1 for m in json.loads(prompt[:cut]) if m["role"] == "assistant")])
        return out

    retriever = open_retriever("bm25s", str(catalog / "index"))
    (episode,) = run_episodes(RECORDS[:1], "bm25_literature_agent", json.dumps, generate, local_search(
        retriever, DocTexts.from_corpus(catalog / "corpus.jsonl")), SearchToolSettings(top_k=2), 1, lambda t: len(t.split()))
    assert prefills == [SEARCH_CALL_PREFILL, SHORT_ANSWER_PREFILL]
    assert [c.query for c in episode.calls] == ["wireless controller"] and episode.final_text == turns[1]
