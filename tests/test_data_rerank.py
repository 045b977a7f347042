"""Re-ranking builder: top-K candidates from a run file or a retriever, anonymised and shuffled."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from verl_rec.builders.rerank import RerankOptions, build_rerank, read_sidecar
from verl_rec.data_preprocess.rerank import main
from verl_rec.retrieval.base import Retriever, SearchHits
from verl_rec.tasks.formats import get_format
from verl_rec.tasks.record_files import read_records, write_records
from verl_rec.tasks.records import TaskRecord

N_DOCS, N_RECORDS, K = 40, 30, 8


def write_inputs(folder: Path) -> tuple[Path, Path, Path]:
    """30 search records; a run ranking doc (i + j) % 40 at rank j; the target of record i is at rank i % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    records, lines = [], []
    for i in range(N_RECORDS):
        ranked = [f"D{(i + j) % N_DOCS:02d}" for j in range(20)]
        target = ranked[i % 10]  # ranks 8 and 9 fall outside the top 8: those records are dropped
        records.append(TaskRecord(f"q{i}", f"esci/{'Video_Games' if i % 2 else 'Baby_Products'}", "search",
                                  {target: 1.0, "D99": 1.0}, query=f"query {i}", split="test"))
        lines += [f"q{i} Q0 {doc} {rank} {100 - rank}.5 bm25" for rank, doc in enumerate(ranked, start=1)]
    write_records(records, folder / "test.parquet")
    (folder / "run.trec").write_text("\n".join(lines) + "\n")
    with (folder / "corpus.jsonl").open("w") as handle:
        for d in range(N_DOCS):
            if d == 5:
                continue  # D05 has no text in the corpus: skipped, the next candidate moves up
            words = " ".join(f"w{d}x{n}" for n in range(12))
            handle.write(json.dumps({"id": f"D{d:02d}", "contents": f"Title {d}\n{words}"}) + "\n")
    return folder / "test.parquet", folder / "run.trec", folder / "corpus.jsonl"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records, run, corpus = write_inputs(tmp_path_factory.mktemp("rerank-raw"))
    out = tmp_path_factory.mktemp("rerank-out")
    assert main(["--records", str(records), "--corpus", str(corpus), "--run", str(run), "--out", str(out),
                 "-k", str(K), "--max-words", "5", "--seed", "3"]) == 0
    return out


def test_candidates_are_anonymised_and_shuffled(built: Path) -> None:
    records = read_records(built / "test.parquet")
    sidecar = read_sidecar(built / "test.parquet")
    assert len(records) == N_RECORDS - 6  # targets at first-stage rank 9 or 10 (i % 10 in 8, 9) miss the top 8
    first_is_top = 0
    for record in records:
        assert record.task == "rerank" and record.split == "test"
        assert record.data_source.startswith("rerank_esci/")
        assert [c.id for c in record.candidates] == [f"Item_{n}" for n in range(1, K + 1)]
        items = sidecar[record.record_id]["items"]
        first_stage = sidecar[record.record_id]["first_stage"]
        assert sorted(first_stage) == sorted(items) and len(items) == K
        docs = [items[item] for item in first_stage]
        assert "D05" not in docs
        i = int(record.record_id[1:])
        expected = [f"D{(i + j) % N_DOCS:02d}" for j in range(20) if (i + j) % N_DOCS != 5][:K]
        assert docs == expected  # first-stage order kept in the sidecar
        for candidate in record.candidates:
            doc = items[candidate.id]
            assert candidate.text == f"Title {int(doc[1:])} w{int(doc[1:])}x0 w{int(doc[1:])}x1 w{int(doc[1:])}x2 ..."
        assert {items[item] for item in record.qrels} == {f"D{(i + i % 10) % N_DOCS:02d}"}  # D99 is not a candidate
        first_is_top += items["Item_1"] == docs[0]
    assert first_is_top < len(records) / 2  # the listed order does not follow the first stage


def test_shuffle_is_seeded(built: Path, tmp_path: Path) -> None:
    records, run, corpus = write_inputs(tmp_path / "raw")
    for seed, same in (("3", True), ("4", False)):
        out = tmp_path / f"out{seed}"
        assert main(["--records", str(records), "--corpus", str(corpus), "--run", str(run), "--out", str(out),
                     "-k", str(K), "--max-words", "5", "--seed", seed]) == 0
        assert ((out / "test.parquet").read_bytes() == (built / "test.parquet").read_bytes()) is same


def test_manifest_counts(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["inputs"] == {"test.parquet": N_RECORDS}
    # records 8, 9, 18, 19, 28, 29 have their target at first-stage rank 9 or 10 (D05 never precedes it there)
    assert manifest["dropped"]["no_relevant_item_among_candidates"] == N_RECORDS - manifest["outputs"]["test.parquet"]
    assert manifest["dropped"]["candidates_without_text_in_corpus"] > 0
    assert manifest["outputs"]["test.parquet"] == N_RECORDS - 6


def test_prompt_renders_candidates(built: Path) -> None:
    record = read_records(built / "test.parquet")[0]
    user = get_format("rerank").messages(record)[1]["content"]
    assert f'"{record.query}"' in user and "[Item_1] Title" in user and "[Item_8]" in user
    assert "reranked_items" in user


class ListRetriever(Retriever):
    """A fake first stage: every query ranks D00, D01, ... (records its calls)."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []

    def search(self, queries: Sequence[str], k: int) -> list[SearchHits]:
        self.calls.append((list(queries), k))
        return [SearchHits([f"D{d:02d}" for d in range(k)], np.arange(k, 0, -1, dtype=np.float32)) for _ in queries]


def test_retriever_first_stage(tmp_path: Path) -> None:
    records, _, corpus = write_inputs(tmp_path / "raw")
    retriever = ListRetriever()
    manifest = build_rerank([records], tmp_path / "out", corpus, retriever=retriever, options=RerankOptions(k=4, batch_size=7))
    assert all(k == 4 for _, k in retriever.calls) and sum(len(q) for q, _ in retriever.calls) == N_RECORDS
    built = read_records(tmp_path / "out" / "test.parquet")
    sidecar = read_sidecar(tmp_path / "out" / "test.parquet")
    # every record sees D00..D03; only those whose target is one of them are kept
    assert {r.record_id for r in built} == {f"q{i}" for i in range(N_RECORDS) if (i + i % 10) % N_DOCS < 4}
    assert all(sorted(sidecar[r.record_id]["items"].values()) == ["D00", "D01", "D02", "D03"] for r in built)
    assert manifest.outputs["test.parquet"] == len(built)


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records, run, corpus = write_inputs(tmp_path / "raw")
    seqrec = tmp_path / "seqrec.parquet"
    write_records([TaskRecord("s1", "seqrec_x/train", "seqrec", {"A": 1.0}, history=("t",))], seqrec)
    assert main(["--records", str(seqrec), "--corpus", str(corpus), "--run", str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(seqrec) in err and "'task'" in err
    bad_run = tmp_path / "bad.trec"
    bad_run.write_text("q0 Q0 D01 one 1.0 x\n")
    assert main(["--records", str(records), "--corpus", str(corpus), "--run", str(bad_run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad_run}:1" in err and "rank" in err


def test_a_file_with_no_record_kept_fails_instead_of_an_empty_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records, run, corpus = write_inputs(tmp_path / "raw")
    out = tmp_path / "o"
    # a run whose candidate lists all miss their targets: no record can be kept
    far = tmp_path / "far.trec"
    far.write_text("".join(f"q{i} Q0 D{(i + 30) % N_DOCS:02d} 1 9.0 x\n" for i in range(N_RECORDS)))
    assert main(["--records", str(records), "--corpus", str(corpus), "--run", str(far), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(records) in err and "none of its 30 records" in err and "no_relevant_item_among_candidates" in err
    assert not (out / records.name).exists()
