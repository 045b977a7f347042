"""What the quickstarts print: the engines' own output goes to a log, the quickstart's lines stay.

Shared by ``python -m verl_rec.quickstart`` (its ``--tiny`` run) and :mod:`verl_rec.quickstart_llm`,
which the command calls: one layer below both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import TextIO


@contextmanager
def engine_output(log: TextIO | None) -> Iterator[None]:
    """Route this process' stdout/stderr (and so its children's: the Java indexer) to ``log``.

    Both the file descriptors (JVM, native libraries, child processes) and Python's
    ``sys.stdout``/``sys.stderr`` (progress bars, warnings) are redirected.
    ``None`` (``--verbose``) leaves everything on the console.
    """
    if log is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    log.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        with redirect_stdout(log), redirect_stderr(log):
            yield
    finally:
        log.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
