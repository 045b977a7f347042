"""Task records from a TREC-format test collection (documents, topics, qrels), e.g. Vaswani.

The queries are split into train and held-out ONCE, by a seeded shuffle of the query ids,
before any model or query is scored. ``requests="verbose"`` turns each query into the
natural-language requests of :mod:`verl_rec.builders.requests` (train: every training template per
query, so the policy sees many phrasings of the same need; held-out: one seeded template per
query, once from the training templates and once from templates training never shows);
``requests="terse"`` keeps the collection's own query text.

Outputs: ``corpus.jsonl`` ({"id", "contents"}), ``train.parquet``, ``test.parquet`` (the
held-out queries in training phrasings; recipes validate on it), ``test_unseen.parquet`` (the
same queries in unseen phrasings, data_source ``<data_source>_unseen``; verbose requests only)
and ``manifest.json`` (the split's query ids and both template sets, so a reader can check
nothing was chosen by its score).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from verl_rec.builders.manifest import Manifest
from verl_rec.builders.requests import REQUEST_TEMPLATES, UNSEEN_REQUEST_TEMPLATES, render_request, seeded_template
from verl_rec.errors import InputError
from verl_rec.retrieval.trec import read_qrels, read_trec_topics, trec_docs_to_jsonl
from verl_rec.tasks.record_files import write_records
from verl_rec.tasks.records import TaskRecord

REQUEST_KINDS = ("verbose", "terse")


@dataclass(frozen=True)
class TrecOptions:
    data_source: str = "vaswani"
    heldout: int = 40
    seed: int = 0
    requests: str = "verbose"
    # the held-out queries' unseen phrasings: ours, or a user's file (read_templates)
    unseen_templates: tuple[str, ...] = UNSEEN_REQUEST_TEMPLATES
    templates_file: str | None = None

    def __post_init__(self) -> None:
        if self.requests not in REQUEST_KINDS:
            raise InputError(f"--requests must be one of {REQUEST_KINDS}, got {self.requests!r}")
        overlap = sorted(set(self.unseen_templates) & set(REQUEST_TEMPLATES))
        if overlap:
            raise InputError(f"unseen templates {overlap} are training templates: the held-out phrasing must be new")


def split_queries(query_ids: list[str], heldout: int, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids): a seeded shuffle of the sorted ids, the first ``heldout`` held out."""
    ids = sorted(query_ids, key=lambda q: (len(q), q))
    random.Random(seed).shuffle(ids)
    return sorted(ids[heldout:], key=lambda q: (len(q), q)), sorted(ids[:heldout], key=lambda q: (len(q), q))


def _records(query_ids: list[str], topics: dict[str, str], qrels: dict[str, dict[str, int]],
             options: TrecOptions, split: str, unseen: bool = False) -> list[TaskRecord]:
    records = []
    data_source = f"{options.data_source}_unseen" if unseen else options.data_source
    for qid in query_ids:
        gains = {doc: float(rel) for doc, rel in qrels[qid].items() if rel > 0}
        if options.requests == "terse":
            variants = [(qid, topics[qid])]
        elif split == "train":
            variants = [(f"{qid}-t{t}", render_request(topics[qid], t)) for t in range(len(REQUEST_TEMPLATES))]
        elif unseen:
            t = seeded_template(qid, options.seed, options.unseen_templates)
            variants = [(f"{qid}-u{t}", render_request(topics[qid], t, options.unseen_templates))]
        else:
            t = seeded_template(qid, options.seed)
            variants = [(f"{qid}-t{t}", render_request(topics[qid], t))]
        records += [TaskRecord(record_id=rid, data_source=data_source, task="search", qrels=gains,
                               query=text, split=split) for rid, text in variants]
    return records


def build_trec_collection(docs: str | Path, topics_path: str | Path, qrels_path: str | Path, out_dir: str | Path,
                          options: TrecOptions = TrecOptions()) -> Manifest:
    """Write the corpus, the two splits and the manifest under ``out_dir``; return the manifest."""
    for name, path in (("--docs", docs), ("--topics", topics_path), ("--qrels", qrels_path)):
        if not Path(path).is_file():
            raise InputError(f"{name} {path}: no such file")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest("trec_collection", settings={**options.__dict__, "docs": str(docs),
                                                     "topics": str(topics_path), "qrels": str(qrels_path)})
    try:
        topics = read_trec_topics(topics_path)
        qrels = read_qrels(qrels_path)
        documents = trec_docs_to_jsonl(docs, out / "corpus.jsonl")
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    manifest.inputs.update(documents=documents, topics=len(topics), qrels_queries=len(qrels))
    judged = [q for q in topics if any(rel > 0 for rel in qrels.get(q, {}).values())]
    manifest.drop("topic without a relevant document in the qrels", len(topics) - len(judged))
    if options.heldout <= 0 or options.heldout >= len(judged):
        raise InputError(f"--heldout {options.heldout}: must be between 1 and {len(judged) - 1} "
                         f"({len(judged)} judged topics in {topics_path})")
    train_ids, heldout_ids = split_queries(judged, options.heldout, options.seed)
    train = _records(train_ids, topics, qrels, options, "train")
    test = _records(heldout_ids, topics, qrels, options, "test")
    write_records(train, out / "train.parquet")
    write_records(test, out / "test.parquet")
    manifest.outputs.update({"corpus.jsonl": documents, "train.parquet": len(train), "test.parquet": len(test)})
    manifest.note("train_query_ids", train_ids)
    manifest.note("heldout_query_ids", heldout_ids)
    if options.requests == "verbose":
        unseen = _records(heldout_ids, topics, qrels, options, "test", unseen=True)
        write_records(unseen, out / "test_unseen.parquet")
        manifest.outputs["test_unseen.parquet"] = len(unseen)
        manifest.note("request_templates", list(REQUEST_TEMPLATES))
        manifest.note("unseen_request_templates", list(options.unseen_templates))
    manifest.write(out)
    return manifest
