"""Stage-by-stage costs behind the benchmark's numbers: where a Lucene or bm25s reward query spends its time.

``python -m bench.profile --products 1200000``, in one process, on the bench catalog and the
benchmark's first short step (distinct queries), k=1000:

* the paper's loop per sample: pyserini ``search(q, k)`` (Java search + 1000 hit objects through
  pyjnius) against the Java call alone;
* ``LuceneRetriever(engine="direct")`` per query: query building, ``IndexSearcher.search``,
  ``ScoredDocs.fromTopDocs`` (loads each hit's stored id), the id strings into Python; and the
  ``int[]`` read-back of document numbers through a ``java.lang.invoke`` loop, one Java call per
  query and one per chunk of queries (what :meth:`LuceneRetriever.target_positions` does), on
  1 and 2 Python threads;
* bm25s: queries/s by engine batch size (a micro-batch of 8 vs 512 queries);
* memory of one cached 1000-id ranking (what ``RetrievalService``'s LRU cache holds per entry).

For the service and the workers, sample them with py-spy while ``bench.run`` runs, e.g.
``py-spy record --pid <RetrievalService pid> --rate 200 --threads -o svc.json -f speedscope``.
"""

from __future__ import annotations

import argparse
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

from bench.catalog import CACHE_ROOT, catalog_dir
from bench.paths import PaperLoop
from bench.queries import QueryFactory


def _per_query_ms(fn, items) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return 1000 * (time.perf_counter() - started) / len(items)


def cached_ranking_bytes(engine, queries: list[str], k: int) -> float:
    """Python heap bytes of one cached ranking of ``k`` ids (what an LRU entry of full rankings costs)."""
    tracemalloc.start()
    kept = [list(h.ids) for h in engine.search(queries, k)]
    per_entry = tracemalloc.get_traced_memory()[0] / len(kept)
    tracemalloc.stop()
    return per_entry * k / max(1, sum(map(len, kept)) / len(kept))


def profile_lucene(index, queries: list[str], warm: list[str], k: int) -> dict[str, float]:
    paper = PaperLoop(index, k).searcher  # the benchmark's JVM heap and the paper's BM25 searcher
    from jnius import autoclass

    from verl_rec.retrieval.lucene.jvm_loops import doc_numbers_handle
    from verl_rec.retrieval.lucene.retriever import LuceneRetriever

    out: dict[str, float] = {}
    direct = LuceneRetriever(index, engine="direct")
    searcher, sort, generator, analyzer, scored_docs, adjuster = direct._parts()
    handle = doc_numbers_handle()
    local = threading.local()

    def numbers(text):
        return direct._top_numbers(text, k)

    for text in warm:  # JIT warm-up of every path
        paper.search(text, k=k)
        direct.search([text], k)
        numbers(text)
    out["paper: pyserini search(q, k) + hit.docid, ms/query"] = _per_query_ms(
        lambda q: [h.docid for h in paper.search(q, k=k)], queries)
    out["paper: the Java call alone (object.search), ms/query"] = _per_query_ms(lambda q: paper.object.search(q, k), queries)
    parts = {"build query": 0.0, "IndexSearcher.search": 0.0, "ScoredDocs.fromTopDocs (stored ids)": 0.0,
             "tie adjuster": 0.0, "ids to Python": 0.0, "int[] doc numbers to Python": 0.0}
    for text in queries:
        t0 = time.perf_counter()
        query = generator.buildQuery("contents", analyzer, text)
        t1 = time.perf_counter()
        top = searcher.search(query, k, sort, True)
        t2 = time.perf_counter()
        docs = scored_docs.fromTopDocs(top, searcher)
        t3 = time.perf_counter()
        adjuster.rerank(docs, None)
        t4 = time.perf_counter()
        list(docs.docids)
        t5 = time.perf_counter()
        local.args = getattr(local, "args", None) or autoclass("java.util.ArrayList")()
        if local.args.size() == 0:
            local.args.add(None)
        local.args.set(0, top)
        list(handle.invokeWithArguments(local.args))
        t6 = time.perf_counter()
        for key, a, b in zip(parts, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
            parts[key] += 1000 * (b - a) / len(queries)
    out.update({f"direct: {key}, ms/query": value for key, value in parts.items()})
    per_query_ms = _per_query_ms(lambda q: direct.search([q], k), queries)
    out["direct: LuceneRetriever.search, queries/s"] = 1000 / per_query_ms
    loop = direct._top_numbers_loop(k)
    size = direct.chunk_size

    def chunk_numbers(chunk):
        return direct._top_numbers_chunk(loop, chunk, k)

    for threads in (1, 2):
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(numbers, warm))
            list(pool.map(chunk_numbers, [warm[i:i + size] for i in range(0, len(warm), size)]))
            started = time.perf_counter()
            list(pool.map(numbers, queries))
            out[f"doc numbers, one Java call per query, {threads} thread(s), queries/s"] = len(queries) / (time.perf_counter() - started)
            started = time.perf_counter()
            list(pool.map(chunk_numbers, [queries[i:i + size] for i in range(0, len(queries), size)]))
            out[f"doc numbers, one Java call per {size} queries, {threads} thread(s), queries/s"] = (
                len(queries) / (time.perf_counter() - started))
            if threads > 1:
                import jnius

                barrier = threading.Barrier(threads)
                list(pool.map(lambda _, barrier=barrier: (barrier.wait(), jnius.detach()), range(threads)))
    out["cache: bytes per cached Lucene ranking of k ids"] = cached_ranking_bytes(direct, queries[:50], k)
    paper.close()
    direct.close()
    return out


def profile_bm25s(index, queries: list[str], k: int) -> dict[str, float]:
    from verl_rec.retrieval.bm25s.retriever import Bm25sRetriever

    out: dict[str, float] = {}
    engine = Bm25sRetriever(index, threads=2)
    engine.warmup()
    engine.search(queries[:64], k)
    for size in (8, 32, 128, 512):
        started = time.perf_counter()
        for i in range(0, len(queries), size):
            engine.search(queries[i:i + size], k)
        out[f"bm25s search, batches of {size}: queries/s"] = len(queries) / (time.perf_counter() - started)
    out["cache: bytes per cached bm25s ranking of k ids"] = cached_ranking_bytes(engine, queries[:50], k)
    engine.close()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_200_000)
    parser.add_argument("--queries", type=int, default=300, help="distinct short queries to time")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--cache-dir", default=str(CACHE_ROOT))
    args = parser.parse_args(argv)
    catalog = catalog_dir(args.products, root=args.cache_dir)
    factory = QueryFactory(catalog_dir(min(args.products, 100_000), root=args.cache_dir), pool=min(args.products, 100_000))
    queries = factory.step(1, "short").unique_queries()
    queries += [q for q in factory.step(2, "short").unique_queries() if q not in set(queries)]
    queries = queries[: args.queries]
    warm = factory.step(1000, "short").unique_queries()[:200]
    results = {**profile_lucene(catalog / "index_lucene", queries, warm, args.k),
               **profile_bm25s(catalog / "index_bm25s", queries, args.k)}
    width = max(map(len, results))
    print(f"{args.products:,} products, {len(queries)} distinct short queries, k={args.k}")
    for key, value in results.items():
        print(f"  {key:{width}}  {value:10.2f}")


if __name__ == "__main__":
    main()
