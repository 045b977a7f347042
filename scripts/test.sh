#!/usr/bin/env bash
# Run the test suite: one pytest process per test file.
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh tests/test_x.py # some files
# Why one process per file: the Lucene tests start a JVM inside the test process (pyjnius), and
# a JVM sharing a process with torch/faiss/numba thread pools started by other files crashed
# once (SIGSEGV) in a whole-suite run; files are independent, so isolating them costs only
# start-up time. Extra pytest options: PYTEST_ARGS="-x -s".
set -uo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[[ ${#files[@]} -eq 0 ]] && files=(tests/test_*.py)
passed=0 failed=0 bad=()
for f in "${files[@]}"; do
  echo "=== $f"
  out=$(python3 -m pytest -q -ra -p no:cacheprovider ${PYTEST_ARGS:-} "$f" 2>&1); code=$?
  echo "$out" | tail -n 15
  p=$(echo "$out" | grep -Eo '[0-9]+ passed' | tail -1 | grep -Eo '[0-9]+'); passed=$((passed + ${p:-0}))
  q=$(echo "$out" | grep -Eo '[0-9]+ (failed|errors?)' | grep -Eo '[0-9]+' | paste -sd+); q=$((${q:-0})); failed=$((failed + q))
  if [[ $code -ne 0 && $code -ne 5 ]]; then bad+=("$f (exit $code)"); [[ $q -eq 0 ]] && failed=$((failed + 1)); fi
done
echo
[[ ${#bad[@]} -gt 0 ]] && printf 'FAILED FILE: %s\n' "${bad[@]}"
echo "$passed passed, $failed failed"
[[ ${#bad[@]} -eq 0 ]]
