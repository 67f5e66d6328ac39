#!/usr/bin/env bash
# run.sh BUILD_DIR WORK_DIR: installs the pgcm build into WORK_DIR/prefix, then
# configures, builds and runs tests/package as an outside project against it.
set -euo pipefail
build=$1; work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$here" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" -j2 >/dev/null
out=$("$work/consumer/consumer")
echo "$out"
grep -q 'invalid_config: invalid config for node "n1": port' <<<"$out"
