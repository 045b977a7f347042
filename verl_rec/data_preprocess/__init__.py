"""Dataset and index builders: ``python -m verl_rec.data_preprocess.<name> --help``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from verl_rec.errors import InputError


def run_builder(build: Callable[[], Any]) -> int:
    """Run one builder for a command line: print its manifest's summary and return 0, or print
    the input error that stopped it (it names the file, row or option) and return 2."""
    try:
        manifest = build()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(manifest.summary())
    return 0
