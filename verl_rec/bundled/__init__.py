"""Data shipped inside the package, so that ``python -m verl_rec.quickstart`` needs nothing but pip.

``vaswani/``: the Vaswani (NPL) test collection, gzipped (1 MB; NOTICE.md says where it comes
from and on what terms). :func:`unpack_vaswani` writes the three TREC files a builder reads.
"""

from __future__ import annotations

import gzip
import shutil
from importlib.resources import files
from pathlib import Path

#: the collection's files as :func:`verl_rec.builders.trec_collection.build_trec_collection` reads them
VASWANI_FILES = ("doc-text.trec", "query-text.trec", "qrels")


def unpack_vaswani(dest: Path) -> dict[str, Path]:
    """Decompress the bundled collection into ``dest`` (skipped for files already there);
    returns ``{"docs", "topics", "qrels"}`` paths."""
    source = files(__name__) / "vaswani"
    dest.mkdir(parents=True, exist_ok=True)
    for name in VASWANI_FILES:
        target = dest / name
        if target.is_file():
            continue
        packed = source / f"{name}.gz"
        if not packed.is_file():
            raise FileNotFoundError(f"{packed}: missing from the installed package (package data of verl_rec.bundled)")
        partial = target.with_name(name + ".partial")
        with packed.open("rb") as raw, gzip.open(raw) as src, partial.open("wb") as out:
            shutil.copyfileobj(src, out)
        partial.rename(target)
    docs, topics, qrels = (dest / name for name in VASWANI_FILES)
    return {"docs": docs, "topics": topics, "qrels": qrels}
