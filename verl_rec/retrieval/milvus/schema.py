"""The collection a Milvus index is: its fields, analyzer, ANN index, and its manifest.

Two modes share one layout: ``bm25`` (a text field analysed by Milvus, a sparse field filled
by Milvus' BM25 function, a sparse inverted index) and ``dense`` (a float vector field holding
our encoder's vectors, an AUTOINDEX / HNSW / IVF_FLAT / FLAT index, inner product).

The manifest (the ``verl_rec_index.json`` fields: backend, layout, encoder, counts) lives in the
engine, in a one-row companion collection ``<collection>__verl_rec``, so a collection on a
remote cluster carries it as a local index folder does. It is written last: a collection
without one is an unfinished build (resumable), never an index to search.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from verl_rec.retrieval.index_metadata import IndexMismatchError, IndexNotFoundError

FORMAT_VERSION = 1
MODES = ("bm25", "dense")
#: closest to Lucene's EnglishAnalyzer (standard tokenizer, lowercase, English stop words, Porter
#: stemming): Milvus' standard tokenizer, lowercase, its ``_english_`` stop list and the Snowball
#: English stemmer (Porter2). The gap is measured in docs/engines.md.
ENGLISH_ANALYZER: dict[str, Any] = {
    "tokenizer": "standard",
    "filter": ["lowercase", {"type": "stop", "stop_words": ["_english_"]}, {"type": "stemmer", "language": "english"}],
}
#: Milvus Lite builds only FLAT, IVF_FLAT and AUTOINDEX; a server or cluster also HNSW (and more)
DENSE_INDEXES = ("AUTOINDEX", "HNSW", "IVF_FLAT", "FLAT")
MANIFEST_SUFFIX = "__verl_rec"
_MAX_TEXT = 65_535  # Milvus' VARCHAR limit in bytes
_MAX_ID = 512


@dataclass(frozen=True)
class CollectionLayout:
    """Names and settings of one collection; what a build records and a search must match."""

    collection: str = "corpus"
    mode: str = "bm25"
    id_field: str = "id"
    text_field: str = "text"
    vector_field: str = ""  # default: "sparse" (bm25) or "vector" (dense)
    analyzer: Mapping[str, Any] = field(default_factory=lambda: dict(ENGLISH_ANALYZER))
    index_type: str = "AUTOINDEX"  # dense only
    index_params: Mapping[str, Any] = field(default_factory=dict)  # dense: M, efConstruction / nlist
    dims: int = 0  # dense only, set by the build

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"milvus mode must be one of {MODES}, got {self.mode!r}")
        if not self.vector_field:
            object.__setattr__(self, "vector_field", "sparse" if self.mode == "bm25" else "vector")
        if self.mode == "dense" and self.index_type not in DENSE_INDEXES:
            raise ValueError(f"milvus dense index_type must be one of {DENSE_INDEXES}, got {self.index_type!r}")

    @property
    def manifest_collection(self) -> str:
        return f"{self.collection}{MANIFEST_SUFFIX}"

    @property
    def metric(self) -> str:
        return "BM25" if self.mode == "bm25" else "IP"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def create_schema(client: Any, layout: CollectionLayout, description: str = "") -> tuple[Any, Any]:
    """The collection schema and index params of ``layout`` (dense needs ``layout.dims``);
    ``description`` records the layout a build started with (checked when it resumes)."""
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, description=description)
    schema.add_field(layout.id_field, DataType.VARCHAR, is_primary=True, max_length=_MAX_ID)
    index = client.prepare_index_params()
    if layout.mode == "bm25":
        schema.add_field(layout.text_field, DataType.VARCHAR, max_length=_MAX_TEXT, enable_analyzer=True,
                         analyzer_params=dict(layout.analyzer))
        schema.add_field(layout.vector_field, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name=f"{layout.vector_field}_bm25", function_type=FunctionType.BM25,
                                     input_field_names=[layout.text_field], output_field_names=[layout.vector_field]))
        index.add_index(field_name=layout.vector_field, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    else:
        schema.add_field(layout.vector_field, DataType.FLOAT_VECTOR, dim=int(layout.dims))
        index.add_index(field_name=layout.vector_field, index_type=layout.index_type, metric_type="IP",
                        params=dict(layout.index_params))
    return schema, index


def _manifest_schema(client: Any) -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, description="verl_rec manifest of a retrieval collection")
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("manifest", DataType.VARCHAR, max_length=_MAX_TEXT)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus requires a vector field
    return schema


def write_manifest(client: Any, layout: CollectionLayout, manifest: Mapping[str, Any]) -> None:
    """Store the manifest next to the collection (replacing an older one): the build's last step."""
    name = layout.manifest_collection
    if client.has_collection(name):
        client.drop_collection(name)
    index = client.prepare_index_params()
    index.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=_manifest_schema(client), index_params=index)
    client.insert(name, [{"key": "manifest", "manifest": json.dumps(dict(manifest)), "unused": [0.0, 0.0]}])
    client.flush(name)


def read_manifest(client: Any, collection: str) -> dict[str, Any] | None:
    """The manifest of ``collection``; None when it has none (not built by verl_rec, or unfinished)."""
    name = f"{collection}{MANIFEST_SUFFIX}"
    if not client.has_collection(name):
        return None
    client.load_collection(name)
    rows = client.query(name, filter='key == "manifest"', output_fields=["manifest"], consistency_level="Strong")
    return json.loads(rows[0]["manifest"]) if rows else None


def drop_all(client: Any, layout: CollectionLayout) -> None:
    """Drop the collection and its manifest (a --replace build)."""
    for name in (layout.manifest_collection, layout.collection):
        if client.has_collection(name):
            client.drop_collection(name)


def check_layout(client: Any, where: str, asked: CollectionLayout, manifest: Mapping[str, Any] | None,
                 analyzer: Mapping[str, Any] | None = None) -> CollectionLayout:
    """The layout to search with: the built one, checked against what the recipe asks; a missing
    collection, a field name or an ``analyzer`` (when the recipe names one) that differs from the
    build fails naming both."""
    build = ("build it with python -m verl_rec.data_preprocess.build_index --backend milvus "
             f"--index {where} --collection {asked.collection}")
    if not client.has_collection(asked.collection):
        known = [c for c in client.list_collections() if not c.endswith(MANIFEST_SUFFIX)]
        raise IndexNotFoundError(f"Milvus at {where} has no collection {asked.collection!r} (it has {known}); "
                                 f"{build}, or set the collection option to one of those")
    if manifest is None:
        raise IndexNotFoundError(f"Milvus collection {asked.collection!r} at {where} has no verl_rec manifest: "
                                 f"its build did not finish (re-run the build to resume it) or it was made "
                                 f"elsewhere; {build}")
    built = CollectionLayout(**manifest["layout"])
    fields = {f["name"] for f in client.describe_collection(asked.collection)["fields"]}
    for key in ("mode", "id_field", "text_field", "vector_field"):
        want, have = getattr(asked, key), getattr(built, key)
        if key == "text_field" and built.mode == "dense":
            continue
        if want != have:
            raise IndexMismatchError(f"Milvus collection {asked.collection!r} at {where} was built with {key}="
                                     f"{have!r} but the recipe asks for {key}={want!r}; set {key}: {have} in the "
                                     f"retrieval options, or rebuild the collection ({build} --replace)")
        if key != "mode" and have not in fields:
            raise IndexMismatchError(f"Milvus collection {asked.collection!r} at {where} has no field {have!r} "
                                     f"(fields: {sorted(fields)}); rebuild it ({build} --replace)")
    if built.mode == "bm25" and analyzer is not None and dict(analyzer) != dict(built.analyzer):
        raise IndexMismatchError(f"Milvus collection {asked.collection!r} at {where} analyses text with "
                                 f"{dict(built.analyzer)} but the recipe asks for {dict(analyzer)}; queries "
                                 "would be analysed unlike the documents: drop the analyzer option (the build's is "
                                 f"used) or rebuild with this analyzer ({build} --replace)")
    return built


__all__ = ["DENSE_INDEXES", "ENGLISH_ANALYZER", "FORMAT_VERSION", "MODES", "CollectionLayout", "check_layout",
           "create_schema", "drop_all", "read_manifest", "write_manifest"]
