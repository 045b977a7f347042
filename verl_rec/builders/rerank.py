"""Re-ranking task records: the top-K first-stage candidates of search records, anonymised.

For each search record, the first stage (a retriever, by default BM25 over the ESCI corpus,
or a TREC run file whose query ids are record ids) gives the top ``k`` (16) documents. They
become candidates ``Item_1 .. Item_k`` with their corpus text, listed in a seeded random
order (per record, independent of the other records), so that neither the id nor the
position tells the first-stage rank. The qrels are mapped to the anonymised ids; a record
with no relevant document among its candidates is dropped and counted (nothing to learn).

Next to each ``<name>.parquet`` a ``<name>.candidates.jsonl`` keeps, per record, the
anonymised id -> document id map and the first-stage order (in anonymised ids): enough to
map a re-ranked list back, and for the evaluator's first-stage baseline.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from verl_rec.builders.manifest import Manifest
from verl_rec.errors import InputError
from verl_rec.jsonl import json_objects
from verl_rec.tasks.record_files import write_records
from verl_rec.tasks.records import Candidate, TaskRecord

SIDECAR_SUFFIX = ".candidates.jsonl"


@dataclass
class RerankOptions:
    k: int = 16
    seed: int = 0
    max_words: int = 100  # words of text per candidate (keeps 16 candidates within ~3k prompt tokens); 0: all
    source_prefix: str = "rerank"
    batch_size: int = 256


def sidecar_path(parquet: str | Path) -> Path:
    """``x/test.parquet`` -> ``x/test.candidates.jsonl``."""
    parquet = Path(parquet)
    return parquet.with_name(parquet.name.removesuffix(".parquet") + SIDECAR_SUFFIX)


def read_sidecar(parquet: str | Path) -> dict[str, dict[str, Any]] | None:
    """``{record_id: {"items": {...}, "first_stage": [...]}}``, or None when there is no sidecar."""
    path = sidecar_path(parquet)
    if not path.is_file():
        return None
    rows = {}
    with path.open("r", encoding="utf-8") as handle:
        for line_no, obj in json_objects(handle, path, "candidates sidecar line", InputError):
            if "record_id" not in obj:
                raise InputError(f"{path}:{line_no}: candidates sidecar line lacks 'record_id'; rebuild it with "
                                 "python -m verl_rec.data_preprocess.rerank")
            rows[obj["record_id"]] = obj
    return rows


def retrieve_candidates(records: Sequence[TaskRecord], retriever: Any, k: int, batch_size: int) -> dict[str, list[str]]:
    """Top-``k`` document ids per record from a :class:`~verl_rec.retrieval.base.Retriever`."""
    unique = list(dict.fromkeys(r.query for r in records))
    ranked: dict[str, list[str]] = {}
    for start in tqdm(range(0, len(unique), batch_size), desc="first stage", unit="batch", mininterval=2):
        batch = unique[start:start + batch_size]
        for query, hits in zip(batch, retriever.search(batch, k=k)):
            ranked[query] = list(hits.ids)
    return {r.record_id: ranked[r.query] for r in records}


def load_texts(corpus_path: str | Path, wanted: set[str]) -> dict[str, str]:
    """Texts of the ``wanted`` ids only (the corpus may hold a million documents)."""
    from verl_rec.retrieval.corpus import CorpusError, iter_corpus

    texts: dict[str, str] = {}
    try:
        for doc_id, text in iter_corpus(corpus_path):
            if doc_id in wanted and doc_id not in texts:
                texts[doc_id] = " ".join(text.split())
    except CorpusError as exc:
        raise InputError(str(exc)) from None
    return texts


def _cut(text: str, max_words: int) -> str:
    words = text.split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "") if max_words > 0 else text


def anonymise(record: TaskRecord, ranked: Sequence[str], texts: Mapping[str, str], options: RerankOptions,
              manifest: Manifest) -> tuple[TaskRecord, dict[str, Any]] | None:
    """The re-ranking record of one search record, and its sidecar row; None when it is dropped."""
    docs: list[str] = []
    for doc in ranked:
        if doc in docs:
            continue
        if doc not in texts:
            manifest.drop("candidates_without_text_in_corpus")  # skipped; the next one moves up
            continue
        docs.append(doc)
        if len(docs) == options.k:
            break
    if not any(record.qrels.get(d, 0.0) > 0 for d in docs):
        manifest.drop("no_relevant_item_among_candidates")
        return None
    if len(docs) < options.k:
        manifest.outputs["records_with_fewer_than_k_candidates"] = manifest.outputs.get("records_with_fewer_than_k_candidates", 0) + 1
    order = list(docs)
    random.Random(f"{options.seed}:{record.record_id}").shuffle(order)  # str seeds hash stably (sha512)
    item_of = {doc: f"Item_{i}" for i, doc in enumerate(order, start=1)}
    candidates = tuple(Candidate(item_of[doc], _cut(texts[doc], options.max_words)) for doc in order)
    qrels = {item_of[doc]: gain for doc, gain in record.qrels.items() if doc in item_of and gain > 0}
    rerank = TaskRecord(record.record_id, f"{options.source_prefix}_{record.data_source}", "rerank", qrels,
                        query=record.query, candidates=candidates, split=record.split)
    sidecar = {"record_id": record.record_id, "items": {item_of[d]: d for d in order},
               "first_stage": [item_of[d] for d in docs]}
    return rerank, sidecar


def build_rerank(record_paths: Sequence[str | Path], out_dir: str | Path, corpus_path: str | Path,
                 retriever: Any = None, run: Mapping[str, Sequence[str]] | None = None,
                 options: RerankOptions = RerankOptions(), settings: dict | None = None) -> Manifest:
    """Write one re-ranking parquet (+ sidecar) per input parquet, and ``manifest.json``."""
    from verl_rec.tasks.record_files import read_records

    if (retriever is None) == (run is None):
        raise InputError("give exactly one first stage: a retriever (--backend/--index) or a run file (--run)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("rerank", settings={**options.__dict__, **(settings or {}), "corpus": str(corpus_path),
                                            "records": [str(p) for p in record_paths]})
    per_file: dict[Path, list[TaskRecord]] = {}
    names = [Path(p).name for p in record_paths]
    if len(set(names)) != len(names):
        raise InputError(f"record files must have distinct names (outputs keep them): {names}")
    for path in map(Path, record_paths):
        records = read_records(path)
        manifest.inputs[path.name] = len(records)
        wrong = [r for r in records if r.task != "search"]
        if wrong:
            raise InputError(f"{path}: column 'task' is {wrong[0].task!r} in {len(wrong)} rows; re-ranking needs search records")
        empty = [r for r in records if not r.query.strip()]
        manifest.drop("record_empty_query", len(empty))
        per_file[path] = [r for r in records if r.query.strip()]

    everything = [r for rows in per_file.values() for r in rows]
    if run is not None:
        ranked = {r.record_id: list(run.get(r.record_id, ())) for r in everything}
        manifest.drop("record_not_in_run", sum(1 for r in everything if r.record_id not in run))
    else:
        ranked = retrieve_candidates(everything, retriever, options.k, options.batch_size)
    depth = options.k if run is None else None
    wanted = {d for docs in ranked.values() for d in (docs[:depth] if depth else docs)}
    texts = load_texts(corpus_path, wanted)

    for path, records in per_file.items():
        built, sidecars = [], []
        for record in records:
            result = anonymise(record, ranked.get(record.record_id, ()), texts, options, manifest)
            if result is not None:
                built.append(result[0])
                sidecars.append(result[1])
        if records and not built:
            raise InputError(f"{path}: none of its {len(records)} records kept a relevant item among the candidates "
                             f"(dropped: {dict(manifest.dropped)}); raise --k or check the first stage")
        target = out / path.name
        write_records(built, target)
        with sidecar_path(target).open("w", encoding="utf-8") as handle:
            for row in sidecars:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        manifest.outputs[path.name] = len(built)
    manifest.write(out)
    return manifest
