"""A deterministic synthetic product catalog for the reward benchmark, and its cached indexes.

Why not ``verl_rec.devkit.synthetic_catalog``: it has ~100 distinct words per category, draws
words one product at a time in Python and needs ~10 minutes per million products. BM25's cost
is set by posting-list lengths, i.e. by the word-frequency distribution, so this generator
builds text whose statistics look like real product text:

* a global vocabulary of ``VOCAB`` words whose frequencies follow a Zipf-Mandelbrot law
  (exponent 1.07, shift 2.7, as fitted on English text); its most frequent words are real
  English function words (Lucene's 33 stop words among them: ~35-40 % of the tokens, as in real
  descriptions), the rest are pronounceable pseudo-words, plus the numbers 1-99 (one-character
  tokens such as "8" must survive both analyzers);
* ``CATEGORIES`` categories, each with its own Zipfian topic vocabulary (3,000 mid-frequency
  words) and its own set of Zipf-distributed brands;
* a title (brand, an alphanumeric model token such as ``kq4821``, 4-9 words drawn mostly from
  the category) and a description of ~50 words (65 % global, 35 % category words): ~60 tokens
  per product, about the size of an ESCI product's title and description;
* ASIN-like ids (``B0`` + 8 base-36 characters, a bijection of the index) so that Lucene's
  tie-break by id string is not the index order.

Products are generated in chunks of ``CHUNK`` with one RNG per chunk, so catalog ``n`` is
exactly the first ``n`` products of any larger one: 100k, 400k and 1.2M share the first 100k
products, and the benchmark's targets (drawn among them) exist in every size.
1.2M products are generated in about a minute (2 cores). Everything is cached under
``bench/.cache/`` (git-ignored): ``catalog-v2-s<seed>/n<N>/{corpus.jsonl, index_lucene/,
index_bm25s/}``.

Command line: ``python -m bench.catalog --products 100000 [--indexes]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CACHE_ROOT = Path(__file__).resolve().parent / ".cache"
VERSION = "v2"
CHUNK = 50_000
VOCAB = 200_000
CATEGORIES = 32
TOPIC_WORDS = 3_000
BRANDS = 20_000
BRANDS_PER_CATEGORY = 600
ZIPF_S, ZIPF_Q = 1.07, 2.7
TOPIC_S = 1.0

#: frequent English words, most frequent first; Lucene's 33 stop words are among them
FUNCTION_WORDS = (
    "the and a of to for with in is this it your on you are that can be or from as our by an at "
    "will its all more not has have use so any no one if into these each their also other which "
    "such was but they them then there up out than only when make most very just over new time "
    "well easy great made best high good"
).split()
_ONSETS = "b c d f g h j k l m n p r s t v w z b d g k l m n p r s t br cr dr gr pl st tr ch sh th".split()
_VOWELS = "a e i o u a e i o u a e i o ai ea ou".split()
_CODAS = ["", "", "", "", "", "n", "r", "s", "t", "l", "m", "x", "ck", "nd", "st", "ng"]
_B36 = np.array(list("0123456789abcdefghijklmnopqrstuvwxyz"))


@dataclass(frozen=True)
class Vocabulary:
    words: np.ndarray  # object array of str, global frequency rank order
    global_cdf: np.ndarray  # Zipf-Mandelbrot CDF over ``words``
    topic_ids: np.ndarray  # (CATEGORIES, TOPIC_WORDS) global word ids, category rank order
    topic_cdf: np.ndarray  # Zipf CDF over a category's topic words
    brands: np.ndarray  # object array of brand names
    brand_ids: np.ndarray  # (CATEGORIES, BRANDS_PER_CATEGORY) brand ids per category
    brand_cdf: np.ndarray


def _zipf_cdf(n: int, s: float, q: float = 0.0) -> np.ndarray:
    weights = 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64) + q, s)
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _pseudo_words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    """``count`` distinct pronounceable words; earlier (more frequent) ones are shorter."""
    out: list[str] = []
    seen = set(taken)
    onsets, vowels, codas = (np.array(x, dtype=object) for x in (_ONSETS, _VOWELS, _CODAS))
    while len(out) < count:
        batch = max(1_000, int((count - len(out)) * 1.3))
        ranks = len(out) + np.arange(batch)
        max_syl = np.where(ranks < 2_000, 2, np.where(ranks < 40_000, 3, 4))
        n_syl = 1 + (rng.random(batch) * max_syl).astype(np.int64)
        parts = (onsets[rng.integers(len(onsets), size=(batch, 4))] + vowels[rng.integers(len(vowels), size=(batch, 4))]
                 + codas[rng.integers(len(codas), size=(batch, 4))])
        for row, n in zip(parts.tolist(), n_syl.tolist()):
            word = "".join(row[:n])
            if len(word) >= 3 and word not in seen:
                seen.add(word)
                out.append(word)
                if len(out) == count:
                    break
    return out


def build_vocabulary(seed: int = 0) -> Vocabulary:
    """The vocabulary, topics and brands (deterministic in ``seed``; ~2 s)."""
    rng = np.random.default_rng([seed, 7919])
    numbers = [str(i) for i in range(1, 100)]
    fillers = _pseudo_words(rng, VOCAB - len(FUNCTION_WORDS) - len(numbers), set(FUNCTION_WORDS) | set(numbers))
    # numbers sit at mid-frequency ranks (sizes, counts), function words on top
    words = FUNCTION_WORDS + fillers[:400] + numbers + fillers[400:]
    words_arr = np.array(words, dtype=object)
    lo, hi = len(FUNCTION_WORDS) + 50, 60_000
    topic_ids = np.stack([rng.choice(np.arange(lo, hi), size=TOPIC_WORDS, replace=False) for _ in range(CATEGORIES)])
    brand_words = _pseudo_words(rng, BRANDS, set(words))
    brands = np.array([w.capitalize() for w in brand_words], dtype=object)
    brand_ids = np.stack([rng.choice(BRANDS, size=BRANDS_PER_CATEGORY, replace=False) for _ in range(CATEGORIES)])
    return Vocabulary(words_arr, _zipf_cdf(VOCAB, ZIPF_S, ZIPF_Q), topic_ids.astype(np.int64),
                      _zipf_cdf(TOPIC_WORDS, TOPIC_S, 1.0), brands, brand_ids.astype(np.int64),
                      _zipf_cdf(BRANDS_PER_CATEGORY, 1.0, 1.0))


def product_ids(start: int, stop: int) -> list[str]:
    """ASIN-like unique ids: ``B0`` + base-36 of an affine bijection of the index mod 36**8
    (scrambled: id string order is not index order, as with real ASINs)."""
    idx = np.arange(start, stop, dtype=np.int64)
    code = (idx * 2_654_435_761 + 982_451_653) % (36 ** 8)  # odd, not a multiple of 3: a bijection
    digits = np.empty((len(idx), 8), dtype=np.int64)
    for pos in range(7, -1, -1):
        code, digits[:, pos] = np.divmod(code, 36)
    chars = _B36[digits]
    return ["B0" + "".join(row) for row in chars]


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size)), len(cdf) - 1)


def generate_chunk(vocab: Vocabulary, chunk: int, seed: int = 0, stop: int = CHUNK) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """The first ``stop`` products of chunk ``chunk`` (ids, titles, descriptions, categories).

    Random draws are made for the whole chunk whatever ``stop`` is, so a product's text
    never depends on how many products are asked for."""
    rng = np.random.default_rng([seed, 104_729, chunk])
    n = CHUNK
    cats = rng.integers(CATEGORIES, size=n)
    brand = vocab.brand_ids[cats, _draw(rng, vocab.brand_cdf, n)]
    letters = _B36[10:][rng.integers(26, size=(n, 2))]
    model_num = rng.integers(100, 100_000, size=n)
    t_len = rng.integers(4, 10, size=n)
    d_len = np.clip(rng.poisson(50, size=n), 12, 120)

    def words_for(lengths: np.ndarray, topic_share: float) -> list[list[str]]:
        total = int(lengths.sum())
        owner = np.repeat(cats, lengths)
        topic = rng.random(total) < topic_share
        ids = _draw(rng, vocab.global_cdf, total)
        n_topic = int(topic.sum())
        ids[topic] = vocab.topic_ids[owner[topic], _draw(rng, vocab.topic_cdf, n_topic)]
        ends = np.cumsum(lengths)
        flat = vocab.words[ids[: int(ends[stop - 1])]].tolist()
        return [flat[end - size:end] for end, size in zip(ends[:stop].tolist(), lengths[:stop].tolist())]

    title_words = words_for(t_len, 0.7)
    desc_words = words_for(d_len, 0.35)
    brands = vocab.brands[brand[:stop]].tolist()
    titles = [f"{b} {l0}{l1}{m} " + " ".join(w) for b, (l0, l1), m, w in
              zip(brands, letters[:stop].tolist(), model_num[:stop].tolist(), title_words)]
    descs = [" ".join(w) for w in desc_words]
    ids = product_ids(chunk * CHUNK, chunk * CHUNK + stop)
    return ids, titles, descs, cats[:stop].astype(np.int16)


def iter_products(n_products: int, seed: int = 0, vocab: Vocabulary | None = None) -> Iterator[tuple[str, str, str, int]]:
    """``(id, title, description, category)`` of the first ``n_products`` products."""
    vocab = vocab or build_vocabulary(seed)
    for chunk in range((n_products + CHUNK - 1) // CHUNK):
        stop = min(CHUNK, n_products - chunk * CHUNK)
        ids, titles, descs, cats = generate_chunk(vocab, chunk, seed, stop)
        for i in range(stop):
            yield ids[i], titles[i], descs[i], int(cats[i])


def catalog_dir(n_products: int, seed: int = 0, root: Path | str | None = None) -> Path:
    return Path(root or CACHE_ROOT) / f"catalog-{VERSION}-s{seed}" / f"n{n_products}"


def ensure_corpus(n_products: int, seed: int = 0, root: Path | str | None = None) -> Path:
    """Write (once) ``corpus.jsonl`` ({"id", "contents": title + newline + description}) and
    ``categories.npy``; return the catalog directory."""
    out = catalog_dir(n_products, seed, root)
    corpus = out / "corpus.jsonl"
    if corpus.is_file() and (out / "categories.npy").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    vocab = build_vocabulary(seed)
    tmp = corpus.with_suffix(".jsonl.tmp")
    cats_all = []
    with tmp.open("w", encoding="utf-8") as handle:
        for chunk in range((n_products + CHUNK - 1) // CHUNK):
            stop = min(CHUNK, n_products - chunk * CHUNK)
            ids, titles, descs, cats = generate_chunk(vocab, chunk, seed, stop)
            # ASCII letters, digits and spaces only: no JSON escaping needed
            handle.write("".join(f'{{"id": "{ids[i]}", "contents": "{titles[i]}\\n{descs[i]}"}}\n' for i in range(stop)))
            cats_all.append(cats)
    np.save(out / "categories.npy", np.concatenate(cats_all))
    os.replace(tmp, corpus)
    logger.info("generated %d products in %.1fs at %s", n_products, time.perf_counter() - started, corpus)
    return out


def read_products(catalog: Path, n: int) -> list[tuple[str, str, str]]:
    """``(id, title, description)`` of the first ``n`` products of a cached corpus."""
    rows = []
    with (Path(catalog) / "corpus.jsonl").open("r", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            title, _, desc = record["contents"].partition("\n")
            rows.append((record["id"], title, desc))
            if len(rows) >= n:
                break
    return rows


def ensure_lucene_index(catalog: Path, threads: int = 2, heap: str = "2g") -> Path:
    from verl_rec.retrieval.lucene.build import build_lucene_index, is_lucene_index

    index = Path(catalog) / "index_lucene"
    done = index / ".bench_complete"
    if is_lucene_index(index) and done.is_file():
        return index
    started = time.perf_counter()
    build_lucene_index(Path(catalog) / "corpus.jsonl", index, threads=threads, heap=heap, progress=False)
    done.write_text(f"{time.perf_counter() - started:.1f}\n")
    logger.info("Lucene index of %s built in %.1fs", catalog, time.perf_counter() - started)
    return index


def ensure_bm25s_index(catalog: Path) -> Path:
    from verl_rec.retrieval.bm25s.build import build_bm25s_index
    from verl_rec.retrieval.index_metadata import METADATA_FILE

    index = Path(catalog) / "index_bm25s"
    if (index / METADATA_FILE).is_file():
        return index
    started = time.perf_counter()
    build_bm25s_index(Path(catalog) / "corpus.jsonl", index, lucene_exact=True, progress=False)
    logger.info("bm25s index of %s built in %.1fs", catalog, time.perf_counter() - started)
    return index


def ensure_catalog(n_products: int, seed: int = 0, root: Path | str | None = None, lucene: bool = True,
                   bm25s: bool = True) -> Path:
    """Corpus + the indexes asked for, built once and cached."""
    out = ensure_corpus(n_products, seed, root)
    if lucene:
        ensure_lucene_index(out)
    if bm25s:
        ensure_bm25s_index(out)
    return out


def corpus_stats(catalog: Path, sample: int = 20_000) -> dict[str, float]:
    """Tokens per product and the share of stop words, on the first ``sample`` products."""
    from verl_rec.retrieval.bm25s.lucene_analyzer import STOP_WORDS

    rows = read_products(catalog, sample)
    words = [w.lower() for _, t, d in rows for w in (t + " " + d).split()]
    return {"products_sampled": len(rows), "words_per_product": len(words) / max(1, len(rows)),
            "stop_word_share": sum(w in STOP_WORDS for w in words) / max(1, len(words)),
            "distinct_words": len(set(words))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, nargs="+", default=[100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--indexes", action="store_true", help="also build the Lucene and bm25s indexes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for n in args.products:
        started = time.perf_counter()
        out = ensure_catalog(n, args.seed, lucene=args.indexes, bm25s=args.indexes)
        print(f"{out}  ({time.perf_counter() - started:.1f}s)  {corpus_stats(out)}")


if __name__ == "__main__":
    main()
