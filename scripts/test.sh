#!/usr/bin/env bash
# Run the test suite: one pytest process per test file, two files at a time (scripts/run_tests.py
# says why). Ends with "N passed, N failed", counted from each file's JUnit XML report.
#   bash scripts/test.sh                               # everything
#   bash scripts/test.sh tests/test_x.py               # some files
#   PYTEST_ARGS='-m "not slow"' bash scripts/test.sh   # the fast tier
#   TEST_JOBS=1 bash scripts/test.sh                   # one file at a time
# Extra pytest options: PYTEST_ARGS="-x -s".
set -uo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/run_tests.py "$@"
