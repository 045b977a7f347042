"""``backend: http`` against a real HTTP server (the standard library's, scripted to fail on
demand): escaping of any query text, response paths, retries, and every failure scored as a
counted retrieval error through the real retrieval service and scorer, never a crash.
Start-up checks fail with the URL, the path or the key and what to do."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from helpers_http_engine import GET_OPTIONS, POST_OPTIONS, SLOW_S, ScriptedEngine
from verl_rec.devkit.anserini_rest import free_port
from verl_rec.integration.reward_curves import metric_name, reward_part_means
from verl_rec.retrieval.http.response_path import ResponsePath, ResponsePathError, ResponseShapeError
from verl_rec.retrieval.http.retriever import HttpEngineUnreachableError, HttpRetriever
from verl_rec.retrieval.http.template import RequestTemplate, TemplateError, clean_text
from verl_rec.retrieval.registry import open_retriever
from verl_rec.retrieval.service.actor import RetrievalService
from verl_rec.retrieval.service.config import ServiceConfig
from verl_rec.reward.scorer import ServiceScorer

HOSTILE = ["a&b=c d", "x?y#z /path", "100% {query} {k} {base}", "ünïcødé 日本語 emoji🙂", "tab\there new\nline",
           "nul\x00byte", "lone \ud800 surrogate", '"quotes" \\back\\slash \'single\'', "+plus+ a%20b %zz",
           "contents:title AND (x OR y) -z \"phrase\"~2", " ".join(f"w{i}" for i in range(800))]


@pytest.fixture(scope="module")
def engine():
    server = ScriptedEngine()
    yield server
    server.close()


def distinct_words(text: str, k: int) -> list[str]:
    return list(dict.fromkeys(clean_text(text).split()))[:k]


@pytest.mark.parametrize("options", [GET_OPTIONS, POST_OPTIONS], ids=["GET", "POST"])
def test_any_query_text_reaches_the_engine_intact(engine, options):
    with open_retriever("http", engine.url, **options) as retriever:
        hits = retriever.search(HOSTILE + ["", "   "], k=1000)
    for query, hit in zip(HOSTILE, hits):
        assert hit.error is None, (query, hit.error)
        assert hit.ids == distinct_words(query, 1000), query[:60]
        assert list(hit.scores) == sorted(hit.scores, reverse=True)
    assert hits[-2].ids == hits[-1].ids == [] and not engine.seen[""], "a blank query is no request"


def test_the_body_is_json_built_from_values_never_pasted_text():
    template = RequestTemplate("{base}/s", "http://h", {"query": {"match": {"text": "{query}"}}, "size": "{k}",
                                                         "note": "k={k} in {index}"}, {"index": "products"})
    body = json.loads(template.body('say "hi" \\ {k}', 7))
    assert body == {"query": {"match": {"text": 'say "hi" \\ {k}'}}, "size": 7, "note": "k=7 in products"}
    assert template.url("a b/c", 3) == "http://h/s"
    from omegaconf import OmegaConf  # a recipe's body arrives as config nodes

    from_config = RequestTemplate("{base}/s", "http://h", OmegaConf.create({"terms": ["{query}", "x"], "n": "{k}"}))
    assert json.loads(from_config.body("a\"b", 2)) == {"terms": ['a"b', "x"], "n": 2}
    assert RequestTemplate("{base}/{index}/q?t={query}", "http://h/", None, {"index": "a/b c"}).url("x&y", 1) \
        == "http://h/a%2Fb%20c/q?t=x%26y"


@pytest.mark.parametrize(("url", "body", "bad"), [
    ("{base}/search?q={qeury}&n={k}", None, "qeury"),
    ("{base}/search", {"q": "{query}", "n": "{kk}"}, "kk"),
    ("{base}/search?q={query!r}", None, "{query!r}"),
    ("{base}/search?q={query", None, "not a valid template"),
])
def test_a_bad_template_key_fails_at_start_naming_it(engine, url, body, bad):
    with pytest.raises(TemplateError, match="backend_options") as info:
        HttpRetriever(engine.url, url=url, body=body, method="POST" if body else "GET", ids_path="hits.hits[*]._id")
    assert bad in str(info.value)
    if "unknown" in str(info.value):
        assert "'query'" in str(info.value) and "'k'" in str(info.value), "the known keys are listed"


def test_response_paths_read_lists_and_name_what_is_missing():
    answer = {"hits": {"hits": [{"_id": "a", "s": 2}, {"_id": "b", "s": 1}]}, "root": [{"f": {"id": 7}}]}
    assert ResponsePath.parse("hits.hits[*]._id").extract(answer) == ["a", "b"]
    assert ResponsePath.parse("hits.hits[1].s").extract(answer) == [1]
    assert ResponsePath.parse("root[*].f.id").extract(answer) == [7]
    assert ResponsePath.parse("[*].docid").extract([{"docid": "x"}]) == ["x"]
    assert ResponsePath.parse("hits.hits[*]._id").extract({"hits": {"hits": []}}) == []
    vespa = ResponsePath.parse("root.children?[*].fields.id")
    assert vespa.extract({"root": {"fields": {"totalCount": 0}}}) == []
    assert vespa.extract({"root": {"children": [{"fields": {"id": "d1"}}]}}) == ["d1"]
    with pytest.raises(ResponseShapeError, match="no key 'root'"):
        vespa.extract({"error": "bad"})
    for bad in ("", "hits..id", "hits[x]", "hits.hits[*", "a b", "?[*]", "a?b"):
        with pytest.raises(ResponsePathError):
            ResponsePath.parse(bad)
    with pytest.raises(ResponseShapeError, match=r"no key '_id' at 'hits.hits\[\*\]._id'.*starts: \{\"hits\""):
        ResponsePath.parse("hits.hits[*]._id").extract({"hits": {"hits": [{"id": "a"}]}})
    with pytest.raises(ResponseShapeError, match="where a list should be"):
        ResponsePath.parse("hits[*]").extract({"hits": {"a": 1}})


def test_an_unreachable_url_fails_at_service_start_with_the_url_and_what_to_do():
    url = f"http://127.0.0.1:{free_port()}"
    config = ServiceConfig(backend="http", index_path=url, backend_options={**GET_OPTIONS, "retries": 1, "backoff_s": 0.01})
    with pytest.raises(HttpEngineUnreachableError, match="Start the engine") as info:
        RetrievalService(config)
    assert url in str(info.value) and "2 tries" in str(info.value)
    with pytest.raises(ValueError, match="base URL"):
        HttpRetriever("data/esci/index_lucene", **GET_OPTIONS)


def test_an_answer_without_the_ids_path_fails_at_start_showing_it(engine):
    with pytest.raises(ResponseShapeError, match=r"no key 'hits' at 'hits'.*'hits.hits\[\*\]._id'") as info:
        HttpRetriever(engine.url, probe_query="noids", **GET_OPTIONS)
    assert '{"took": 3, "result": []}' in str(info.value)
    with pytest.raises(HttpEngineUnreachableError, match="refused the start-up probe.*HTTP 500"):
        HttpRetriever(engine.url, probe_query="fail500", retries=0, **GET_OPTIONS)


def test_the_auth_header_comes_from_the_environment(engine, monkeypatch):
    monkeypatch.delenv("VERL_REC_TEST_ENGINE_KEY", raising=False)
    with pytest.raises(KeyError, match="VERL_REC_TEST_ENGINE_KEY"):
        HttpRetriever(engine.url, auth_env="VERL_REC_TEST_ENGINE_KEY", **GET_OPTIONS)
    monkeypatch.setenv("VERL_REC_TEST_ENGINE_KEY", "s3cret")
    with HttpRetriever(engine.url, auth_env="VERL_REC_TEST_ENGINE_KEY", auth_prefix="ApiKey ", **GET_OPTIONS) as r:
        r.search(["auth check"], 5)
    assert engine.last_headers.get("Authorization") == "ApiKey s3cret"


def output(query: str) -> str:
    return f'<think>x</think>\n<answer>{json.dumps({"query": query})}</answer>'


def test_engine_failures_are_counted_retrieval_errors_through_the_service(engine):
    """500s, a timeout, text that is not JSON and an answer without ids each score as a retrieval
    error (0, counted in ``retrieval_error`` and in the step's ``train-aux`` mean); a query that
    fails twice then succeeds is retried to success; nothing raises."""
    options = {**GET_OPTIONS, "timeout_s": 0.5, "retries": 2, "backoff_s": 0.01}
    config = ServiceConfig(backend="http", index_path=engine.url, backend_options=options, batch_window_ms=1)
    service = RetrievalService(config)
    scorer = ServiceScorer.from_reward_kwargs({"metric": "ndcg@10"})
    scorer.service = service
    bad = ["fail500 b", "slow b", "garbage b", "noids b"]
    queries = ["good b", "fail500x2 b", *bad]

    async def score_all():
        return await asyncio.gather(*(scorer.score_text(output(q), {"b": 1}) for q in queries))

    started = time.perf_counter()
    results = asyncio.run(score_all())
    assert time.perf_counter() - started < SLOW_S + 2, "the timeout did not cut the slow request"
    by_query = dict(zip(queries, results))
    assert by_query["good b"].score == pytest.approx(0.1 + 1 / 1.5849625, rel=1e-6)  # b at rank 2
    assert by_query["fail500x2 b"].score == by_query["good b"].score, "retried to success"
    assert engine.seen["fail500x2 b"] == 3
    assert engine.seen["fail500 b"] == 3 and engine.seen["garbage b"] == 1, "only what can help is retried"
    for query in bad:
        assert by_query[query].score == 0.0 and by_query[query].extra["retrieval_error"] == 1.0, query
    assert service.stats.refused_queries == len(bad)
    step = reward_part_means(r.extra for r in results)
    assert step[metric_name("retrieval_error")] == pytest.approx(len(bad) / len(queries))

    asyncio.run(score_all())  # errors are not cached: asked again; answers are
    assert engine.seen["fail500 b"] == 6 and engine.seen["good b"] == 1
    service.retriever.close()


def test_max_concurrency_bounds_requests_in_flight(engine):
    for limit in (1, 3):
        engine.max_in_flight = 0
        with HttpRetriever(engine.url, max_concurrency=limit, **GET_OPTIONS) as retriever:
            hits = retriever.search([f"pause c{limit}_{i}" for i in range(6)], k=5)
        assert [h.ids for h in hits] == [["pause", f"c{limit}_{i}"] for i in range(6)]
        assert engine.max_in_flight == limit, (limit, engine.max_in_flight)


def test_the_registry_opens_it_and_build_index_refuses_it(engine, tmp_path, capsys):
    from verl_rec.data_preprocess import build_index

    with open_retriever("http", engine.url, **GET_OPTIONS) as retriever:
        assert isinstance(retriever, HttpRetriever)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "d1", "contents": "x"}\n')
    assert build_index.main(["--corpus", str(corpus), "--backend", "http", "--index", str(tmp_path / "i")]) == 2
    assert "no index builder" in capsys.readouterr().err and not (tmp_path / "i").exists()


def test_every_engine_block_in_the_docs_is_a_valid_configuration():
    """The OpenSearch / Elasticsearch / Solr / Vespa blocks of docs/http-backend.md are not run
    against their engines here, but each must open (templates, method, paths) and fill a request."""
    import re
    import textwrap
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "http-backend.md").read_text()

    def options_of(node):
        if isinstance(node, dict):
            if "backend_options" in node:
                return node
            return next((found for v in node.values() if (found := options_of(v))), None)
        return None

    blocks = [options_of(yaml.safe_load(textwrap.dedent(b))) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    blocks = [b for b in blocks if b]
    assert len(blocks) >= 5, len(blocks)
    for block in blocks:
        options = {k: v for k, v in block["backend_options"].items() if k != "auth_env"}
        retriever = HttpRetriever(block.get("index_path", "http://127.0.0.1:8081"), probe=False, **options)
        retriever.template.url('a "hostile" {query} & text', 1000)
        body = retriever.template.body('a "hostile" {query} & text', 1000)
        assert body is None or 'a \\"hostile\\" {query} & text' in body.decode(), body
        retriever.close()
