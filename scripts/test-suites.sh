#!/usr/bin/env bash
# make test's pytest part: two suites side by side, each in its own pytest process.
#   [e2e]          tests marked e2e: act and the Docker engine (one act run at a time, as before)
#   [unit+integ]   everything else: no Docker; their own loopback services (MLflow, PostgreSQL, S3)
# The e2e suite spends much of its time waiting (containers starting, canary windows, images building), which
# the other suite fills: on 2 cores the two together take about as long as the e2e suite alone. Every line is
# prefixed with its suite (pytest prints a line per test file as it finishes); each suite ends with its summary
# and its slowest tests. Exit: 0 when both passed, else the first failing suite's code.
set -uo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.tools/uv/bin/uv}

suite() {
  local name=$1
  shift
  "$UV" run --frozen --all-extras pytest -p no:cacheprovider --durations=20 "$@" 2>&1 | sed -u "s/^/[$name] /"
  return "${PIPESTATUS[0]}"
}

start=$(date +%s)
suite e2e -m e2e tests &
e2e=$!
suite unit+integ -m "not e2e" tests &
rest=$!
wait "$e2e"
e2e_code=$?
wait "$rest"
rest_code=$?
echo "test-suites: e2e exit $e2e_code, unit+integ exit $rest_code, $(($(date +%s) - start)) s"
if [ "$e2e_code" -ne 0 ]; then exit "$e2e_code"; fi
exit "$rest_code"
