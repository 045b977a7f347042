"""Inputs given as a local path or a URL: every builder accepts both.

``resolve_input("data/test.csv")`` returns the path unchanged (the builder's reader then
names a missing file). ``resolve_input("https://.../test.csv")`` downloads the file once into
a cache folder, with a progress bar, and returns the cached path; later calls reuse it. The
download goes to a ``.part`` file that is renamed only when complete, so an interrupted
download is never mistaken for a finished one. ``file://`` URLs go through the same path
(that is how the download code is tested offline).

Official locations (for ``--help`` texts and the README):
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from verl_rec.errors import InputError

DEFAULT_CACHE = Path(os.environ.get("VERL_REC_CACHE", Path.home() / ".cache" / "verl_rec" / "downloads"))
URL_SCHEMES = ("http", "https", "file")
CHUNK = 1 << 20

#: Where each release lives (documented in the builders' --help; nothing here downloads by itself).
OFFICIAL_SOURCES = {
    "esci": (
        "ESCI (Amazon Shopping Queries, Apache-2.0): https://github.com/amazon-science/esci-data, folder "
        "shopping_queries_dataset/ (Git LFS). Direct files: "
        "https://github.com/amazon-science/esci-data/raw/main/shopping_queries_dataset/"
        "shopping_queries_dataset_examples.parquet and ..._products.parquet"
    ),
    "c4": (
        "Amazon-C4 (McAuley lab): Hugging Face dataset McAuley-Lab/Amazon-C4, files "
        "https://huggingface.co/datasets/McAuley-Lab/Amazon-C4/resolve/main/test.csv and "
        "https://huggingface.co/datasets/McAuley-Lab/Amazon-C4/resolve/main/sampled_item_metadata_1M.jsonl "
        "(code: github.com/hyp1231/AmazonReviews2023, folder amazon-c4)"
    ),
    "amazon2023": (
        "Amazon Reviews 2023 (McAuley lab, https://amazon-reviews-2023.github.io): benchmark files "
        "benchmark/0core/timestamp_w_his/<Category>.{train,valid,test}.csv and item metadata "
        "raw/meta_categories/meta_<Category>.jsonl, on Hugging Face (dataset McAuley-Lab/Amazon-Reviews-2023, "
        "https://huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main/<path>) or gzipped on "
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/<path>.gz (.gz files are read as they are)"
    ),
}

__doc__ += "\n".join(f"\n* {text}" for text in OFFICIAL_SOURCES.values())


def is_url(value: str | Path) -> bool:
    """True for ``http(s)://`` and ``file://`` inputs."""
    return urllib.parse.urlparse(str(value)).scheme.lower() in URL_SCHEMES


def cached_path(url: str, cache_dir: str | Path) -> Path:
    """Where ``url`` is cached: ``<cache>/<hash of the URL>/<file name>`` (the name keeps its suffix)."""
    parsed = urllib.parse.urlparse(url)
    name = Path(urllib.parse.unquote(parsed.path)).name or "download"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return Path(cache_dir) / digest / name


def _copy_with_progress(response, out, total: int | None, label: str, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress,
              file=sys.stderr, mininterval=1) as bar:
        while True:
            chunk = response.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
            bar.update(len(chunk))


def download(url: str, target: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``target`` through a ``.part`` file; fail naming the URL."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "verl-rec"})
        with urllib.request.urlopen(request, timeout=timeout) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(length) if length and str(length).isdigit() else None
            _copy_with_progress(response, out, total, target.name, progress)
    except (OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise InputError(f"cannot download {url} ({exc}); download it by hand and pass the local path") from None
    part.replace(target)
    return target


def resolve_input(path_or_url: str | Path, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """A local path as is; a URL downloaded once into ``cache_dir`` (default ``$VERL_REC_CACHE``)."""
    if not is_url(path_or_url):
        return Path(path_or_url).expanduser()
    url = str(path_or_url)
    target = cached_path(url, cache_dir if cache_dir is not None else DEFAULT_CACHE)
    if target.is_file():
        return target
    return download(url, target, progress=progress)
