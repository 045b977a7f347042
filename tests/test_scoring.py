"""The reward contract, and a property-based attack on the scorer with >= 10,000 outputs."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.reward.compute_score import compute_score, split_kwargs
from verl_rec.reward.parsing import FormatSpec, ParsedOutput, parse_output
from verl_rec.reward.scoring import RewardSpec, parse_ground_truth, reward_from_metric, score_ranking

EXTRA_KEYS = {"format_ok", "retrieval_error", "query_words", "ndcg@1000", "ndcg@10", "recall@100"}


class WordIndexRetriever(Retriever):
    """A deterministic in-memory engine for unit tests: doc ``w`` matches queries holding ``w``."""

    name = "words"

    def __init__(self, fail_on: str = "\x00never") -> None:
        self.fail_on = fail_on
        self.calls = 0

    def search(self, queries, k):
        self.calls += 1
        hits = []
        for query in queries:
            if self.fail_on in query:
                raise RuntimeError("engine down")
            words = list(dict.fromkeys(query.lower().split()))[:k]
            hits.append(SearchHits(ids=words))
        return hits


def kwargs(retriever, **extra):
    return {"retriever": retriever, "eval_metrics": ["ndcg@10", "recall@100"], **extra}


def answer(query: str) -> str:
    return "<think>t</think><answer>" + json.dumps({"query": query}) + "</answer>"


def test_contract_values():
    engine = WordIndexRetriever()
    malformed = compute_score("esci", "no tags", ["shoe"], None, **kwargs(engine))
    assert malformed["score"] == -2.0 and malformed["format_ok"] == 0.0 and engine.calls == 0
    miss = compute_score("esci", answer("hat cap"), ["shoe"], None, **kwargs(engine))
    assert miss["score"] == 0.0 and miss["format_ok"] == 1.0 and miss["ndcg@1000"] == 0.0
    hit = compute_score("esci", answer("shoe hat"), ["shoe"], None, **kwargs(engine))
    assert hit["score"] == pytest.approx(0.1 + 1.0) and hit["ndcg@10"] == 1.0 and hit["query_words"] == 2
    second = compute_score("esci", answer("hat shoe"), ["shoe"], None, **kwargs(engine))
    assert second["score"] == pytest.approx(0.1 + 1 / math.log2(3))
    for row in (malformed, miss, hit, second):
        assert set(row) == EXTRA_KEYS | {"score"} and all(isinstance(v, float) for v in row.values())


def test_retrieval_error_is_counted_not_hidden(caplog):
    engine = WordIndexRetriever(fail_on="boom")
    row = compute_score("esci", answer("boom shoe"), ["shoe"], None, **kwargs(engine))
    assert row["score"] == 0.0 and row["retrieval_error"] == 1.0 and row["format_ok"] == 1.0
    assert "retrieval failed" in caplog.text


def test_configurable_penalty_bonus_and_metric():
    engine = WordIndexRetriever()
    custom = kwargs(engine, format_penalty=-1.0, bonus=0.0, metric="recall@1")
    assert compute_score("c4", "junk", ["a"], None, **custom)["score"] == -1.0
    assert compute_score("c4", answer("a b"), ["a", "b"], None, **custom)["score"] == 0.5


def test_rerank_uses_the_list_as_ranking():
    text = '<think>t</think><answer>{"reranked_items": ["Item_2", "Item_1"]}</answer>'
    row = compute_score("rerank", text, ["Item_1"], None, answer_key="reranked_items", metric="ndcg@16")
    assert row["score"] == pytest.approx(0.1 + 1 / math.log2(3)) and row["query_words"] == 2


def test_ground_truth_forms():
    assert parse_ground_truth(["a", "a", "b"]) == {"a": 1.0, "b": 1.0}
    assert parse_ground_truth('{"a": 3, "b": 1}') == {"a": 3.0, "b": 1.0}
    assert parse_ground_truth('["a"]') == {"a": 1.0}
    assert parse_ground_truth({"targets": ["a", "b"], "gains": [2, 1]}) == {"a": 2.0, "b": 1.0}
    assert parse_ground_truth({"targets": ["a"], "gains": None}) == {"a": 1.0}
    for bad in ("not json", {"targets": ["a"], "gains": [1, 2]}, 5):
        with pytest.raises(ValueError, match="ground_truth"):
            parse_ground_truth(bad)


def test_unknown_kwarg_and_metric_fail_early():
    with pytest.raises(KeyError, match="mertic"):
        split_kwargs({"mertic": "ndcg@10"})
    with pytest.raises(ValueError, match="not of the form"):
        split_kwargs({"metric": "ndcg10"})


def test_score_parsed_depth_and_keys():
    spec = RewardSpec(metric="ndcg@1000", eval_metrics=("ndcg@10", "ndcg@1000"))
    assert spec.metric_keys == ("ndcg@1000", "ndcg@10") and spec.depth == 1000
    result = score_ranking(ParsedOutput(answer="a"), ["a"], {"a": 1.0}, spec)
    assert result.score == pytest.approx(1.1)
    assert reward_from_metric(0.0, spec) == 0.0


# ---------- property-based: no exception, every score in the documented set ----------

def _in_contract(score: float) -> bool:
    return score in (-2.0, 0.0) or 0.1 < score <= 1.1 + 1e-12


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
tags = st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "<|im_end|>", "</s>", "{", "}", '"query"', ":"])
words = st.lists(st.sampled_from(["shoe", "hat", "red", "sock", "AND", "(", "*", "\x00", "鞋", "😀"]), max_size=20)


@st.composite
def outputs(draw):
    kind = draw(st.integers(0, 7))
    query = " ".join(draw(words))
    valid = answer(query)
    if kind == 0:
        return valid
    if kind == 1:  # truncated anywhere
        return valid[: draw(st.integers(0, len(valid)))]
    if kind == 2:  # nested / shuffled tags
        return "".join(draw(st.lists(tags | st.text(max_size=5), max_size=15)))
    if kind == 3:  # huge
        return answer(" ".join(["shoe"] * draw(st.integers(1000, 12000))))
    if kind == 4:  # binary junk decoded leniently
        return draw(st.binary(max_size=200)).decode("utf-8", errors="replace") + draw(st.sampled_from(["", valid]))
    if kind == 5:  # JSON of the wrong types
        return "<think>x</think><answer>" + json.dumps({"query": draw(json_values)}) + "</answer>"
    if kind == 6:  # any JSON at all
        return "<think>x</think><answer>" + json.dumps(draw(json_values)) + "</answer>"
    return draw(st.text(max_size=300))


ENGINE = WordIndexRetriever(fail_on="\x00")


@pytest.mark.slow  # 10,500 generated outputs
@settings(max_examples=10_500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(text=outputs(), targets=st.lists(st.sampled_from(["shoe", "hat", "red", "x"]), min_size=1, max_size=3))
def test_scorer_survives_anything(text, targets):
    row = compute_score("esci", text, targets, None, **kwargs(ENGINE))
    assert _in_contract(row["score"]), row
    assert set(row) == EXTRA_KEYS | {"score"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in row.values())
    assert row["format_ok"] == float(parse_output(text, FormatSpec()).ok)
