"""The reward contract, and a property-based attack on the scorer with >= 10,000 outputs."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verl_rec.qrels import parse_qrels
from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.reward.compute_score import compute_score, split_kwargs
from verl_rec.reward.contract import RewardSpec, reward_from_metric, score_ranking
from verl_rec.reward.parsing import ParsedOutput, parse_output
from verl_rec.tasks.formats import FormatSpec, get_format

EXTRA_KEYS = {"format_ok", "retrieval_error", "query_words", "query_repeated_words", "query_repeat_share",
              "ndcg@1000", "ndcg@10", "recall@100"}


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
    assert parse_qrels(["a", "a", "b"]) == {"a": 1.0, "b": 1.0}
    assert parse_qrels('{"a": 3, "b": 1}') == {"a": 3.0, "b": 1.0}
    assert parse_qrels('["a"]') == {"a": 1.0}
    assert parse_qrels({"targets": ["a", "b"], "gains": [2, 1]}) == {"a": 2.0, "b": 1.0}
    assert parse_qrels({"targets": ["a"], "gains": None}) == {"a": 1.0}
    for bad in ("not json", {"targets": ["a"], "gains": [1, 2]}, 5):
        with pytest.raises(ValueError, match="ground_truth"):
            parse_qrels(bad)


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


def test_task_record_qrels_errors_name_the_row_and_column():
    from verl_rec.tasks.records import TaskRecord

    row = {"record_id": "r", "data_source": "esci", "task": "search"}
    assert TaskRecord.from_row({**row, "qrels": '{"a": 2}'}).qrels == {"a": 2.0}
    assert TaskRecord.from_row({**row, "qrels": '["a", "b"]'}).qrels == {"a": 1.0, "b": 1.0}  # every stored form
    for bad in ("{not json", '{"a": "high"}', "7"):
        with pytest.raises(ValueError, match=r"test\.parquet row 3: column 'qrels'"):
            TaskRecord.from_row({**row, "qrels": bad}, where="test.parquet row 3")


def test_settings_keys_are_the_spec_fields_and_both_entry_points_take_them():
    from dataclasses import fields

    from verl_rec.reward.reward_kwargs import FORMAT_KEYS, RECIPE_FORMAT_KEYS, REWARD_KEYS, RewardSettings

    assert REWARD_KEYS == tuple(f.name for f in fields(RewardSpec))
    assert set(RECIPE_FORMAT_KEYS) < set(FORMAT_KEYS) == {f.name for f in fields(FormatSpec)}
    values = {"metric": "recall@5", "eval_metrics": ["ndcg@10"], "format_penalty": -1.0, "bonus": 0.2,
              "retrieval_error_score": -0.5, "repeat_penalty": 0.3, "length_penalty": 0.01, "length_penalty_after": 20}
    assert set(values) == set(REWARD_KEYS)
    assert RewardSettings.from_mapping(values).reward == split_kwargs(values)[1] == RewardSpec(
        metric="recall@5", eval_metrics=("ndcg@10",), format_penalty=-1.0, bonus=0.2, retrieval_error_score=-0.5,
        repeat_penalty=0.3, length_penalty=0.01, length_penalty_after=20)
    settings = RewardSettings.from_mapping({"think_prefilled": True, "max_query_words": 3})
    assert settings.format_spec(get_format("rerank")) == FormatSpec(answer_key="reranked_items", think_prefilled=True, max_query_words=3)
    with pytest.raises(KeyError, match="answer_key"):  # the prompt format decides it, not the recipe
        RewardSettings.from_mapping({"answer_key": "query"})


class WordService:
    """The in-process engine behind the async interface of the retrieval service's client."""

    def __init__(self, engine: WordIndexRetriever) -> None:
        self.engine = engine

    async def target_positions(self, query, k, targets):
        return self.engine.target_positions([query], k, [targets])[0]


def test_one_scorer_for_a_sample_and_for_a_batch():
    """The reward manager's path (one sample, async service) and the batch path (compute_score,
    evaluation) give the same results; the batch sends each distinct query once per batch."""
    import asyncio

    from verl_rec.reward.scorer import prepare, score_with_search, score_with_service

    spec = RewardSpec(eval_metrics=("ndcg@10", "recall@100"))
    rerank = FormatSpec(answer_key="reranked_items")
    cases = [(answer("shoe hat"), ["shoe"], FormatSpec()), (answer("shoe hat"), {"hat": 2, "x": 1}, FormatSpec()),
             (answer("red sock"), '["sock"]', FormatSpec()), ("no tags", ["shoe"], FormatSpec()),
             (answer("boom shoe"), ["shoe"], FormatSpec()),
             ('<think>t</think><answer>{"reranked_items": ["b", "a"]}</answer>', ["a"], rerank)]
    pendings = [prepare(text, parse_qrels(truth), fmt, spec) for text, truth, fmt in cases]
    engine = WordIndexRetriever(fail_on="boom")
    single = [asyncio.run(score_with_service(p, WordService(engine))) for p in pendings]
    batch_engine = WordIndexRetriever()
    batched = score_with_search(pendings, batch_engine.search, batch_size=2)
    assert batch_engine.calls == 2  # 3 distinct queries, batches of 2
    for one, many, (text, truth, fmt) in zip(single[:4] + single[5:], batched[:4] + batched[5:], cases[:4] + cases[5:]):
        assert one == many
        row = compute_score("esci", text, truth, None, retriever=WordIndexRetriever(), eval_metrics=["ndcg@10", "recall@100"],
                            answer_key=fmt.answer_key)
        assert row == {"score": one.score, **one.extra}
    assert single[4].extra["retrieval_error"] == 1.0 and batched[4].extra["retrieval_error"] == 0.0
    assert [r.score for r in single] == pytest.approx([1.1, 0.1 + (2 / math.log2(3)) / (2 + 1 / math.log2(3)), 0.1 + 1 / math.log2(3),
                                                       -2.0, 0.0, 0.1 + 1 / math.log2(3)])


def test_a_batch_counts_a_failed_search_or_raises_it():
    from verl_rec.reward.scorer import prepare, score_with_search

    pendings = [prepare(answer(q), {"shoe": 1.0}, FormatSpec(), RewardSpec()) for q in ("boom", "shoe")]
    counted = score_with_search(pendings, WordIndexRetriever(fail_on="boom").search)
    assert [r.extra["retrieval_error"] for r in counted] == [1.0, 1.0]  # one batch: both queries failed
    with pytest.raises(RuntimeError, match="engine down"):
        score_with_search(pendings, WordIndexRetriever(fail_on="boom").search, count_errors=False)


def test_evaluation_scores_through_the_scorer_and_counts_failures():
    from verl_rec.evaluation.systems import prepare_outputs, prepare_raw, reward_specs, score_system
    from verl_rec.tasks.records import TaskRecord

    records = [TaskRecord(f"r{i}", "esci", "search", {"shoe": 1.0}, query="hat shoe") for i in range(3)]
    formats, specs = {"search": FormatSpec()}, reward_specs({"search": ("ndcg@10", "recall@100")})
    outputs = {"r0": answer("shoe"), "r1": "junk"}  # r2 has no output
    engine = WordIndexRetriever()
    rows = score_system(records, prepare_outputs(records, outputs, formats, specs), engine, missing={"r2"})
    assert [(r["format_ok"], r["error"], r["query_words"], r["ndcg@10"]) for r in rows] == [
        (True, "", 1, 1.0), (False, "missing_answer", None, 0.0), (False, "missing_output", None, 0.0)]
    raw = score_system(records, prepare_raw(records, {}, formats, specs), engine)
    assert engine.calls == 2  # one call per system: one distinct query each
    assert [r["ndcg@10"] for r in raw] == [pytest.approx(1 / math.log2(3))] * 3 and set(raw[0]) >= {"recall@100"}


def test_repeated_terms_are_logged_and_the_optional_penalties_are_off_by_default():
    engine = WordIndexRetriever()
    plain = compute_score("esci", answer("Shoe shoe SHOE hat, hat red"), ["shoe"], None, **kwargs(engine))
    assert plain["query_words"] == 6.0 and plain["query_repeated_words"] == 3.0  # shoe x2 and hat x1 repeat
    assert plain["query_repeat_share"] == pytest.approx(3 / 6) and plain["score"] == pytest.approx(1.1)
    shaped = compute_score("esci", answer("Shoe shoe SHOE hat, hat red"), ["shoe"], None,
                           **kwargs(engine, repeat_penalty=0.2, length_penalty=0.01, length_penalty_after=4))
    assert shaped["score"] == pytest.approx(1.1 - 0.2 * 0.5 - 0.01 * 2)
    assert {k: v for k, v in shaped.items() if k != "score"} == {k: v for k, v in plain.items() if k != "score"}
    unique = compute_score("esci", answer("red shoe"), ["shoe"], None, **kwargs(engine, repeat_penalty=0.2))
    assert unique["query_repeat_share"] == 0.0 and unique["score"] == pytest.approx(0.1 + 1 / math.log2(3))
    # never shaped: a format failure keeps the penalty, a retrieval error its score
    assert compute_score("esci", "junk", ["shoe"], None, **kwargs(engine, length_penalty=1.0))["score"] == -2.0
    failed = compute_score("esci", answer("boom boom"), ["shoe"], None,
                           **kwargs(WordIndexRetriever(fail_on="boom"), repeat_penalty=1.0))
    assert failed["score"] == 0.0 and failed["retrieval_error"] == 1.0 and failed["query_repeat_share"] == 0.5
    with pytest.raises(ValueError, match="repeat_penalty"):
        RewardSpec(repeat_penalty=-1.0)


RERANKED = '<think>t</think><answer>{"reranked_items": %s}</answer>'
ITEMS = ["Item_1", "Item_2", "Item_3"]


@pytest.mark.parametrize("items, score", [
    (["Item_2"], -2.0), (["Item_2", "Item_2", "Item_99"], -2.0), (["Item_2", "Item_1", "Item_3", "Item_1"], -2.0),
    (["Item_2", "Item_1", "Item_3"], 1.1), (["Item_1", "Item_2", "Item_3"], 0.1 + 1 / math.log2(3)),
])
def test_a_reranked_list_must_be_a_permutation_of_the_candidates(items, score):
    """Without the check ["Item_2"] and ["Item_2", "Item_2", "Item_99"] scored 1.1: a reward hack."""
    import asyncio

    from verl_rec.reward.reward_kwargs import RewardSettings
    from verl_rec.reward.scorer import ServiceScorer

    text = RERANKED % json.dumps(items)
    row = compute_score("rerank", text, ["Item_2"], {"candidate_ids": ITEMS}, answer_key="reranked_items", metric="ndcg@16")
    assert row["score"] == pytest.approx(score) and row["format_ok"] == float(score != -2.0)
    scorer = ServiceScorer(RewardSettings.from_mapping({"metric": "ndcg@16"}))  # the reward manager's scorer
    result = asyncio.run(scorer.score_text(text, ["Item_2"], "rerank", candidates=ITEMS))
    assert result.score == pytest.approx(score) and result.extra["format_ok"] == row["format_ok"]
    unchecked = compute_score("rerank", text, ["Item_2"], None, answer_key="reranked_items", metric="ndcg@16")
    assert unchecked["format_ok"] == 1.0  # no candidate ids given: nothing to check against


class RefusingRetriever(WordIndexRetriever):
    """Refuses a query holding "refuse" the way an engine refuses one: a marked, empty ranking."""

    def search(self, queries, k):
        hits = super().search([q.replace("refuse", "") for q in queries], k)
        return [SearchHits(ids=[], error="query refused") if "refuse" in q else h for q, h in zip(queries, hits)]


def test_a_query_the_engine_refuses_is_a_retrieval_error_not_a_miss():
    import asyncio

    from verl_rec.reward.scorer import prepare, score_with_search, score_with_service

    engine = RefusingRetriever()
    assert engine.target_positions(["refuse shoe", "shoe"], 10, [["shoe"], ["shoe"]]) == [None, {"shoe": 0}]
    pendings = [prepare(answer(q), {"shoe": 1.0}, FormatSpec(), RewardSpec()) for q in ("refuse shoe", "shoe")]
    for count_errors in (True, False):  # an evaluation counts it too: the model's query failed, not the engine
        results = score_with_search(pendings, engine.search, count_errors=count_errors)
        assert [r.extra["retrieval_error"] for r in results] == [1.0, 0.0]
        assert [r.score for r in results] == [0.0, pytest.approx(1.1)]
    one = asyncio.run(score_with_service(pendings[0], WordService(engine)))  # the service path: None positions
    assert one.extra["retrieval_error"] == 1.0 and one.score == 0.0


def test_tasks_import_nothing_from_reward():
    import subprocess
    import sys

    code = ("import sys, verl_rec.tasks.formats, verl_rec.tasks.records; "
            "print(sorted(m for m in sys.modules if m.startswith('verl_rec.reward')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


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
