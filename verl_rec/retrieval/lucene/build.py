"""Corpus JSONL -> Lucene index, by Anserini's ``IndexCollection`` in a child process.

Our JSONL corpus -> Anserini ``JsonCollection`` -> ``IndexCollection`` with
``DefaultLuceneDocumentGenerator`` and Anserini's default English analyzer (StandardTokenizer,
English possessive filter, lower-casing, Lucene's 33 English stop words, Porter stemmer). Only
docids and postings with term frequencies are stored: no raw text, positions or doc vectors.

The indexer's console output (log4j INFO lines, JVM warnings) goes to ``<index>/build.log``;
it is echoed to stderr only with ``verbose=True``, and its last lines are in the error when
the indexer fails. Our own progress bar (``progress``) and the result still show.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from importlib import metadata
from pathlib import Path

from verl_rec.retrieval.corpus import CorpusError, CorpusFormat, iter_corpus
from verl_rec.retrieval.index_metadata import BUILD_LOG, refuse_foreign_folder, write_index_metadata
from verl_rec.retrieval.lucene.java import ensure_java
from verl_rec.retrieval.lucene.java_text import sanitize_text

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_COUNT_MARK = "VERL_REC_LUCENE_NUM_DOCS="
_LOG_TAIL = 40  # indexer lines quoted in the error when it fails


def is_lucene_index(index_dir: str | Path) -> bool:
    """A Lucene index has a ``segments_N`` commit file."""
    path = Path(index_dir)
    return path.is_dir() and any(path.glob("segments_*"))


def _write_json_collection(corpus_path: Path, out_dir: Path, fmt: CorpusFormat, progress: bool) -> tuple[int, int]:
    """Write Anserini JsonCollection input; return (documents, documents with empty text)."""
    from tqdm.auto import tqdm

    count = empty = 0
    with (out_dir / "docs.jsonl").open("w", encoding="utf-8") as out:
        docs = iter_corpus(corpus_path, fmt)
        for doc_id, text in tqdm(docs, desc=f"convert {corpus_path.name}", unit="doc", disable=not progress):
            text = sanitize_text(text)
            empty += not text.strip(" ")  # Anserini skips docs whose Java trim() is empty (chars <= U+0020)
            out.write(json.dumps({"id": doc_id, "contents": text}, ensure_ascii=False) + "\n")
            count += 1
    return count, empty


def _run_indexer(args: list[str], heap: str, corpus_path: Path, log_path: Path, verbose: bool) -> int:
    """Run Anserini's IndexCollection in a child Python (own JVM); return the indexed doc count.

    Every line the child prints goes to ``log_path`` (and to stderr when ``verbose``).
    """
    cmd = [sys.executable, "-m", "verl_rec.retrieval.lucene", "index", "--heap", heap, "--", *args]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    tail: deque[str] = deque(maxlen=_LOG_TAIL)
    num_docs = None
    with log_path.open("w", encoding="utf-8") as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, encoding="utf-8",
            errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(_COUNT_MARK):
                num_docs = int(line[len(_COUNT_MARK):])
                continue
            log.write(line)
            tail.append(line.rstrip())
            if verbose:
                print(line, end="", file=sys.stderr, flush=True)
    if proc.returncode != 0 or num_docs is None:
        lines = "\n".join(tail)
        raise RuntimeError(f"Lucene indexing of corpus {corpus_path} failed (exit {proc.returncode}); full indexer "
                           f"log in {log_path}; its last lines:\n{lines}")
    return num_docs


def _pyserini_version() -> str | None:
    try:
        return metadata.version("pyserini")
    except metadata.PackageNotFoundError:
        return None


def build_lucene_index(
    corpus_path: str | Path,
    index_dir: str | Path,
    fmt: CorpusFormat = CorpusFormat(),
    threads: int = 2,
    heap: str = "2g",
    progress: bool = True,
    verbose: bool = False,
) -> Path:
    """Build a BM25-ready Lucene index of a JSONL corpus; return the index directory.

    The Java indexer runs in a child process so that this process' JVM (if any, or future)
    keeps its own options; its output goes to ``<index_dir>/build.log`` (and to stderr when
    ``verbose``). ``progress`` shows our corpus conversion bar. An existing index at
    ``index_dir`` is replaced; a non-empty directory that is not a Lucene index is refused.
    """
    corpus_path, index_dir = Path(corpus_path), Path(index_dir)
    refuse_foreign_folder(index_dir, "lucene", is_index=is_lucene_index(index_dir))
    index_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anserini-json-", dir=index_dir.parent) as tmp:
        count, empty = _write_json_collection(corpus_path, Path(tmp), fmt, progress)
        if count == 0:
            raise CorpusError(f"{corpus_path}: the corpus has no documents")
        args = ["-collection", "JsonCollection", "-input", tmp, "-index", str(index_dir),
                "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(max(1, int(threads)))]
        indexed = _run_indexer(args, heap, corpus_path, index_dir / BUILD_LOG, verbose)
    if indexed != count - empty:
        raise RuntimeError(
            f"Lucene index of corpus {corpus_path} has {indexed} documents, expected {count - empty} "
            f"({count} read, {empty} with empty text skipped by Anserini)"
        )
    if empty:
        logger.warning("%s: %d documents with empty text were not indexed", corpus_path, empty)
    write_index_metadata(index_dir, "lucene", FORMAT_VERSION, {
        "analyzer": "anserini-default-english (StandardTokenizer, possessives, lower case, stop words, Porter)",
        "pyserini_version": _pyserini_version(),
        "corpus_path": str(corpus_path.resolve()),
        "corpus_format": {"id_field": fmt.id_field, "text_fields": list(fmt.text_fields)},
        "num_docs": indexed,
        "empty_docs_skipped": empty,
    })
    logger.info("indexed %d documents of %s into %s in %.1fs", indexed, corpus_path, index_dir, time.perf_counter() - started)
    return index_dir


def index_main(heap: str, anserini_args: list[str]) -> None:
    """Child-process entry: run IndexCollection, then print the committed document count."""
    ensure_java(heap)
    from jnius import autoclass  # starts the JVM; pyserini itself (and torch) is not imported

    autoclass("io.anserini.index.IndexCollection").main(anserini_args)
    index = anserini_args[anserini_args.index("-index") + 1]
    paths = autoclass("java.nio.file.Paths")
    directory = autoclass("org.apache.lucene.store.FSDirectory").open(paths.get(index))
    reader = autoclass("org.apache.lucene.index.DirectoryReader").open(directory)  # raises if nothing was committed
    print(f"{_COUNT_MARK}{reader.numDocs()}", flush=True)
    reader.close()
