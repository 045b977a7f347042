"""Run the test suite: one pytest process per test file, ``--jobs`` files at a time.

Why one process per file: the Lucene tests start a JVM inside the test process (pyjnius), and a
JVM sharing a process with torch/faiss/numba thread pools started by other files crashed once
(SIGSEGV) in a whole-suite run; files are independent, so isolating them costs only start-up.
Why two at a time on 2 cores: a serial run leaves a core idle while a file starts processes,
waits on a JVM or a Ray actor, or runs one torch thread. The longest files go first (by
``tests/durations.txt``, the last full run's seconds); each file gets its own ``--basetemp`` so
that two pytest sessions never clean up each other's temporary folders. Each file gets
``cores / jobs`` OpenMP threads (``OMP_NUM_THREADS``, unless set): two files that each spread
torch over every core fight for the cores (numbers: docs/performance.md, "CPU settings").

Counts come from each file's JUnit XML report, not from pytest's text; the last line is
``N passed, N failed``. Exit status 0 only when every file passed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from junit_counts import counts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTHING_COLLECTED = 5  # pytest's exit code when -m deselected every test: not a failure


@dataclass(frozen=True)
class FileResult:
    path: str
    passed: int
    failed: int
    exit_code: int
    seconds: float

    @property
    def bad(self) -> bool:
        return self.exit_code not in (0, NOTHING_COLLECTED)


DURATIONS = REPO / "tests" / "durations.txt"
DURATIONS_HEADER = """\
# seconds per test file in the last full run (scripts/test.sh, 2 at a time, 2 cores).
# scripts/run_tests.py starts the longest first; a file not listed counts as long. Refresh:
# bash scripts/test.sh | tee /tmp/tests.log; python3 scripts/run_tests.py --durations-from /tmp/tests.log > tests/durations.txt
"""
FILE_LINE = re.compile(r"^=== (\S+) \((\d+) s, exit", re.M)


def known_durations() -> dict[str, float]:
    """Seconds per file from ``tests/durations.txt``, for ordering only."""
    if not DURATIONS.is_file():
        return {}
    rows = (line.split(maxsplit=1) for line in DURATIONS.read_text().splitlines() if line and not line.startswith("#"))
    return {path.strip(): float(seconds) for seconds, path in rows}


def longest_first(files: list[str]) -> list[str]:
    """Longest first shortens a run of parallel files; an unknown (new) file goes first with the long ones."""
    seconds = known_durations()
    return sorted(files, key=lambda f: -seconds.get(f, float("inf")))


def durations_from(log_text: str) -> str:
    rows = sorted(((int(s), path) for path, s in FILE_LINE.findall(log_text)), reverse=True)
    return DURATIONS_HEADER + "".join(f"{s} {path}\n" for s, path in rows)


def file_env(jobs: int) -> dict[str, str]:
    """The environment of one test file: this one, with the cores shared among the files run at once."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    return env


def run_file(path: str, pytest_args: list[str], reports: Path, print_lock: threading.Lock,
             env: dict[str, str] | None = None) -> FileResult:
    name = Path(path).stem
    xml, out = reports / f"{name}.xml", reports / f"{name}.out"
    command = [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", f"--junitxml={xml}",
               f"--basetemp={reports / ('tmp_' + name)}", *pytest_args, path]
    start = time.monotonic()
    with out.open("w") as log:
        code = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.monotonic() - start
    passed, failed = counts(str(xml))
    if code not in (0, NOTHING_COLLECTED) and failed == 0:  # crashed before writing its report: count it once
        failed = 1
    result = FileResult(path, passed, failed, code, seconds)
    tail = out.read_text(errors="replace").splitlines()[-15:]
    with print_lock:
        print(f"=== {path} ({seconds:.0f} s, exit {code})", *tail, sep="\n", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="test files (default: tests/test_*.py)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("TEST_JOBS", "2")),
                        help="files run at the same time (env TEST_JOBS; default 2)")
    parser.add_argument("--durations-from", metavar="LOG",
                        help="print tests/durations.txt from a full run's output, run nothing")
    args = parser.parse_args(argv)
    if args.durations_from:
        print(durations_from(Path(args.durations_from).read_text(errors="replace")), end="")
        return 0
    files = args.files or sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py"))
    files = longest_first(files)
    pytest_args = shlex.split(os.environ.get("PYTEST_ARGS", ""))
    started, lock = time.monotonic(), threading.Lock()
    with tempfile.TemporaryDirectory(prefix="verl_rec_tests_") as tmp, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        env = file_env(args.jobs)
        results = list(pool.map(lambda f: run_file(f, pytest_args, Path(tmp), lock, env), files))
    wall = time.monotonic() - started
    print(f"\n=== slowest files ({wall:.0f} s in all, {args.jobs} at a time, OMP_NUM_THREADS={env['OMP_NUM_THREADS']})")
    for r in sorted(results, key=lambda r: -r.seconds)[:15]:
        print(f"{r.seconds:7.0f} s  {r.path}")
    for r in results:
        if r.bad:
            print(f"FAILED FILE: {r.path} (exit {r.exit_code})")
    print(f"{sum(r.passed for r in results)} passed, {sum(r.failed for r in results)} failed")
    return 1 if any(r.bad for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
