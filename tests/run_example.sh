#!/usr/bin/env bash
# run_example.sh BINARY PATTERN...
# Runs an example against the test cluster named by PGCM_TEST_ENV_FILE (the
# quickstart's environment variables are set from it) and checks that it
# exits 0 and that every extended regex PATTERN matches a line of its output.
set -uo pipefail
bin=$1; shift
env_file=${PGCM_TEST_ENV_FILE:?PGCM_TEST_ENV_FILE not set}
val() { grep "^$1=" "$env_file" | head -1 | cut -d= -f2-; }
export PGCM_HOST=$(val PGCM_TEST_HOST)
export PGCM_PORT_PRIMARY=$(val PGCM_TEST_PORT_node0)
export PGCM_PORT_REPLICA1=$(val PGCM_TEST_PORT_node1)
export PGCM_PORT_REPLICA2=$(val PGCM_TEST_PORT_node2)
export PGCM_DATABASE=$(val PGCM_TEST_DB)
export PGCM_USER=$(val PGCM_TEST_USER)
export PG_PASSWORD=$(val PGCM_TEST_PASSWORD)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 120 "$bin" >"$out" 2>&1
rc=$?
cat "$out"
if [ $rc -ne 0 ]; then
  echo "run_example: $bin exited with $rc" >&2
  exit 1
fi
for p in "$@"; do
  if ! grep -Eq -- "$p" "$out"; then
    echo "run_example: no line matches: $p" >&2
    exit 1
  fi
done
if grep -qF -- "$PG_PASSWORD" "$out"; then
  echo "run_example: the password appears in the output" >&2
  exit 1
fi
echo "run_example: all $# patterns found"
