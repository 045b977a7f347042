#!/usr/bin/env bash
# Run the test suite: one pytest process per test file.
#   bash scripts/test.sh                          # everything
#   bash scripts/test.sh tests/test_x.py          # some files
#   PYTEST_ARGS='-m "not slow"' bash scripts/test.sh   # the fast tier
# Why one process per file: the Lucene tests start a JVM inside the test process (pyjnius), and
# a JVM sharing a process with torch/faiss/numba thread pools started by other files crashed
# once (SIGSEGV) in a whole-suite run; files are independent, so isolating them costs only
# start-up time. Counts come from each run's JUnit XML report, not from pytest's text.
# Extra pytest options: PYTEST_ARGS="-x -s".
set -uo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[[ ${#files[@]} -eq 0 ]] && files=(tests/test_*.py)
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
passed=0 failed=0 bad=()
for f in "${files[@]}"; do
  echo "=== $f"
  xml="$reports/$(basename "$f" .py).xml"
  eval "args=(${PYTEST_ARGS:-})"
  python3 -m pytest -q -ra -p no:cacheprovider --junitxml="$xml" "${args[@]}" "$f" > "$reports/out" 2>&1; code=$?
  tail -n 15 "$reports/out"
  # "passed failed" of this file: tests minus failures, errors and skips; failures plus errors.
  read -r p q < <(python3 scripts/junit_counts.py "$xml")
  passed=$((passed + p)); failed=$((failed + q))
  # exit 5 = nothing collected (e.g. everything deselected by -m): not a failure
  if [[ $code -ne 0 && $code -ne 5 ]]; then bad+=("$f (exit $code)"); [[ $q -eq 0 ]] && failed=$((failed + 1)); fi
done
echo
[[ ${#bad[@]} -gt 0 ]] && printf 'FAILED FILE: %s\n' "${bad[@]}"
echo "$passed passed, $failed failed"
[[ ${#bad[@]} -eq 0 ]]
