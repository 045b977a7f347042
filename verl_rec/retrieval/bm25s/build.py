"""Corpus JSONL -> bm25s index with Lucene's exact BM25 term scores (or bm25s' own).

Indexing analyzes the corpus with :mod:`~verl_rec.retrieval.bm25s.lucene_analyzer` (Anserini's
default English analyzer, reimplemented), then stores a bm25s index: one precomputed score per
(term, document) in a CSC matrix, saved with bm25s' own ``save`` (loaded memory-mapped by the
retriever). Two scoring modes:

* ``lucene_exact=True`` (default): the stored scores are Lucene 9.9.1's float32 BM25 term
  scores (:mod:`~verl_rec.retrieval.bm25s.lucene_scoring`: one-byte length norms, float32 order
  of operations, ``docCount`` = documents with at least one token). Document scores then equal
  what pyserini's ``LuceneSearcher`` computes. Term frequencies, norm bytes and idf are stored
  too, so that the retriever can recompute any query-term boost exactly.
* ``lucene_exact=False``: bm25s' own ``method="lucene"`` scores (exact document lengths, mean
  length over all documents), close to Lucene but not equal.

``import bm25s`` here is the third-party package (absolute import), not this subpackage.
"""

from __future__ import annotations

import json
import logging
import time
from array import array
from pathlib import Path

import numpy as np

from verl_rec.retrieval.bm25s import lucene_scoring as lx
from verl_rec.retrieval.bm25s.lucene_analyzer import ANALYZER_NAME, LuceneEnglishAnalyzer
from verl_rec.retrieval.corpus import CorpusError, CorpusFormat, iter_corpus
from verl_rec.retrieval.index_metadata import index_dir_swap, refuse_foreign_folder, write_index_metadata

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: files a verl_rec bm25s index holds besides bm25s' own
DOC_IDS, DOC_RANK, TF, NORMS, IDF = "doc_ids.json", "doc_rank.npy", "tf.npy", "norms.npy", "idf.npy"


def _analyze_corpus(corpus_path: Path, fmt: CorpusFormat, progress: bool, batch_size: int):
    """Return (doc ids, vocab, flat term ids, per-doc token counts) of the whole corpus."""
    from tqdm.auto import tqdm

    analyzer = LuceneEnglishAnalyzer()
    ids: list[str] = []
    vocab: dict[str, int] = {}
    tokens, lengths = array("i"), array("q")
    batch: list[str] = []

    def flush() -> None:
        for terms in analyzer.analyze_many(batch):
            tokens.extend([vocab.setdefault(t, len(vocab)) for t in terms])
            lengths.append(len(terms))
        batch.clear()

    for doc_id, text in tqdm(iter_corpus(corpus_path, fmt), desc=f"analyze {corpus_path.name}", unit="doc",
                             disable=not progress):
        ids.append(doc_id)
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    flush()
    return ids, vocab, np.frombuffer(tokens, dtype=np.int32), np.frombuffer(lengths, dtype=np.int64)


def _postings(tokens: np.ndarray, lengths: np.ndarray, num_terms: int):
    """CSC postings sorted by (term, doc): indptr per term, doc indices, term frequencies."""
    num_docs = len(lengths)
    docs = np.repeat(np.arange(num_docs, dtype=np.int64), lengths)
    keys, tf = np.unique(tokens.astype(np.int64) * num_docs + docs, return_counts=True)
    term, doc = np.divmod(keys, num_docs)
    indptr = np.zeros(num_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(term, minlength=num_terms), out=indptr[1:])
    return indptr, doc.astype(np.int32), tf, term


def _doc_rank(ids: list[str]) -> np.ndarray:
    """Rank of each document's id in string order (Lucene's ``SortField.Type.STRING_VAL``)."""
    order = sorted(range(len(ids)), key=ids.__getitem__)  # code point order == UTF-8 byte order
    rank = np.empty(len(ids), dtype=np.int32)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(ids), dtype=np.int32)
    return rank


def build_bm25s_index(
    corpus_path: str | Path,
    index_dir: str | Path,
    fmt: CorpusFormat = CorpusFormat(),
    k1: float = 1.2,
    b: float = 0.75,
    lucene_exact: bool = True,
    progress: bool = True,
    batch_size: int = 10_000,
    verbose: bool = False,
) -> Path:
    """Analyze a JSONL corpus and save a bm25s index (+ ``verl_rec_index.json``); return its dir.

    An existing verl_rec bm25s index at ``index_dir`` is replaced; any other non-empty
    directory is refused. The metadata file is written last, so a crashed build never loads.
    ``progress`` shows our analysis bar; ``verbose`` also bm25s' own bars (``lucene_exact=False``).
    """
    import bm25s

    if not (np.isfinite(k1) and k1 >= 0) or not 0 <= b <= 1:  # Lucene's BM25Similarity refuses these too
        raise ValueError(f"BM25 needs a finite k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
    corpus_path, index_dir = Path(corpus_path), Path(index_dir)
    refuse_foreign_folder(index_dir, "bm25s")
    started = time.perf_counter()
    ids, vocab, tokens, lengths = _analyze_corpus(corpus_path, fmt, progress, batch_size)
    if not ids:
        raise CorpusError(f"{corpus_path}: the corpus has no documents")
    if len(set(ids)) != len(ids):
        logger.warning("%s: document ids are not unique; ties between equal ids follow corpus order", corpus_path)
    num_docs, num_terms = len(ids), len(vocab)
    doc_count = int(np.count_nonzero(lengths))  # Lucene's docCount: documents with >= 1 token
    sum_ttf = int(lengths.sum())
    if doc_count == 0:
        raise CorpusError(f"{corpus_path}: no document has any indexable term")
    indptr, docs, tf, term = _postings(tokens, lengths, num_terms)

    extra: dict[str, np.ndarray] = {}
    if lucene_exact:
        norms = lx.int_to_byte4(lengths)
        avgdl = lx.avg_field_length(sum_ttf, doc_count)
        idf = lx.idf(np.diff(indptr), doc_count)
        cache = lx.norm_inverse_cache(k1, b, avgdl)
        data = lx.term_score(idf[term], tf, cache[norms[docs]])  # boost 1: weight == idf
        model = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numpy")
        model.scores = {"data": data, "indices": docs, "indptr": indptr, "num_docs": num_docs}
        model.vocab_dict = vocab
        model.nonoccurrence_array = None
        tf_dtype = np.uint16 if tf.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
        extra = {TF: tf.astype(tf_dtype), NORMS: norms, IDF: idf}
    else:
        model = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numpy")
        per_doc = [t.tolist() for t in np.split(tokens, np.cumsum(lengths)[:-1])]
        model.index((per_doc, vocab), create_empty_token=False, show_progress=verbose)
        del per_doc
    del tokens, term

    with index_dir_swap(index_dir) as tmp:
        model.save(tmp, show_progress=False)
        (tmp / DOC_IDS).write_text(json.dumps(ids), encoding="utf-8")  # ASCII escapes: lone surrogates survive
        np.save(tmp / DOC_RANK, _doc_rank(ids))
        for name, values in extra.items():
            np.save(tmp / name, values)
        write_index_metadata(tmp, "bm25s", FORMAT_VERSION, {
            "bm25s_version": bm25s.__version__,
            "k1": float(k1),
            "b": float(b),
            "lucene_exact": bool(lucene_exact),
            "analyzer": ANALYZER_NAME,
            "corpus_path": str(corpus_path.resolve()),
            "corpus_format": {"id_field": fmt.id_field, "text_fields": list(fmt.text_fields)},
            "num_docs": num_docs,
            "doc_count": doc_count,
            "sum_total_term_freq": sum_ttf,
            "num_terms": num_terms,
            "num_postings": int(len(docs)),
        })
    logger.info("bm25s index of %d docs (%d terms, lucene_exact=%s) built in %.1fs at %s",
                num_docs, num_terms, lucene_exact, time.perf_counter() - started, index_dir)
    return index_dir
