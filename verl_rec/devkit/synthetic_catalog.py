"""A deterministic synthetic product catalog in the ESCI release schema.

Used by the quickstart (a small bundled example that runs anywhere, offline) and by tests
and benchmarks. Words follow a Zipf law inside each category so that BM25 behaves as on real
product text: frequent generic words, rare discriminative ones. The files written are the
ones the official ESCI release ships (same file names, columns and types):

* ``shopping_queries_dataset_products.parquet``: product_id, product_title,
  product_description, product_bullet_point, product_brand, product_color, product_locale
* ``shopping_queries_dataset_examples.parquet``: example_id, query, query_id, product_id,
  product_locale, esci_label, small_version, large_version, split
* ``shopping_queries_dataset_sources.csv``: query_id, source
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = {
    "Video_Games": (
        "console controller gamepad wireless headset joystick cartridge disc edition bundle "
        "arcade racing shooter puzzle adventure charger stand skin keyboard mouse"
    ),
    "Baby_Products": (
        "stroller diaper bottle pacifier crib blanket bib teether monitor carrier "
        "wipes onesie rattle bassinet swaddle nursing formula highchair playmat sling"
    ),
    "Office_Products": (
        "stapler notebook pen pencil marker binder folder envelope paper tape "
        "calculator planner label scissors clip desk organizer eraser highlighter ink"
    ),
    "Sports_and_Outdoors": (
        "tent backpack bottle yoga mat dumbbell bicycle helmet glove ball "
        "racket jersey sleeping bag compass lantern hiking fishing rod kayak skateboard"
    ),
}
GENERIC = (
    "premium durable portable lightweight classic pro mini large small set "
    "pack new best quality design compact easy use kids adult"
).split()
BRANDS = "Acme Zenith Orbit Nimbus Vertex Polar Ember Cobalt Sable Juniper".split()
COLORS = "black white red blue green pink grey yellow purple orange".split()


def _zipf_choice(rng: np.random.Generator, words: list[str], size: int) -> list[str]:
    weights = 1.0 / np.arange(1, len(words) + 1)
    return list(rng.choice(words, size=size, p=weights / weights.sum()))


def _rare_words(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=rng.integers(5, 9))) for _ in range(n)]


def generate_products(n_products: int, seed: int = 0) -> pd.DataFrame:
    """``n_products`` US products spread over the four paper test domains."""
    rng = np.random.default_rng(seed)
    rare = _rare_words(rng, max(50, n_products // 2))
    rows = []
    names = list(CATEGORIES)
    for i in range(n_products):
        category = names[i % len(names)]
        vocab = CATEGORIES[category].split()
        noun = vocab[rng.integers(len(vocab))]
        brand, color = BRANDS[rng.integers(len(BRANDS))], COLORS[rng.integers(len(COLORS))]
        model = rare[rng.integers(len(rare))]
        title_words = [brand, model, *_zipf_choice(rng, GENERIC, 2), color, noun]
        description = " ".join(_zipf_choice(rng, vocab + GENERIC, 25))
        bullets = "\n".join(" ".join(_zipf_choice(rng, vocab + GENERIC, 6)) for _ in range(3))
        rows.append({
            "product_id": f"B{i:09d}",
            "product_title": " ".join(title_words).title(),
            "product_description": description if rng.random() > 0.1 else None,  # the release has nulls
            "product_bullet_point": bullets if rng.random() > 0.1 else None,
            "product_brand": brand,
            "product_color": color,
            "product_locale": "us",
            "category": category,
        })
    return pd.DataFrame(rows)


def generate_examples(products: pd.DataFrame, n_queries: int, seed: int = 0, test_share: float = 0.3) -> pd.DataFrame:
    """Queries written from a product's title; that product and its near twins are Exact."""
    rng = np.random.default_rng(seed + 1)
    rows, example_id = [], 0
    by_category = {c: g for c, g in products.groupby("category")}
    for q in range(n_queries):
        source = products.iloc[rng.integers(len(products))]
        words = source["product_title"].lower().split()
        keep = sorted(rng.choice(len(words), size=min(len(words), rng.integers(2, 4)), replace=False))
        query = " ".join(words[i] for i in keep)
        same = by_category[source["category"]]
        others = same.sample(n=min(6, len(same)), random_state=int(rng.integers(1 << 30)))
        judged = [(source["product_id"], "E")] + [
            (pid, str(rng.choice(["E", "S", "C", "I"], p=[0.15, 0.35, 0.2, 0.3])))
            for pid in others["product_id"] if pid != source["product_id"]
        ]
        split = "test" if rng.random() < test_share else "train"
        for product_id, label in judged:
            rows.append({
                "example_id": example_id, "query": query, "query_id": q, "product_id": product_id,
                "product_locale": "us", "esci_label": label, "small_version": 1, "large_version": 1,
                "split": split,
            })
            example_id += 1
    return pd.DataFrame(rows)


def write_esci_release(out_dir: str | Path, n_products: int = 2000, n_queries: int = 300, seed: int = 0) -> Path:
    """Write the three ESCI release files (plus a category map) for a synthetic catalog."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    products = generate_products(n_products, seed)
    examples = generate_examples(products, n_queries, seed)
    products.drop(columns=["category"]).to_parquet(out / "shopping_queries_dataset_products.parquet", index=False)
    examples.to_parquet(out / "shopping_queries_dataset_examples.parquet", index=False)
    sources = examples[["query_id"]].drop_duplicates().assign(source="other")
    sources.to_csv(out / "shopping_queries_dataset_sources.csv", index=False)
    products[["product_id", "category"]].to_csv(out / "product_categories.csv", index=False)
    return out
