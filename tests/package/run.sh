#!/usr/bin/env bash
# run.sh BUILD_DIR WORK_DIR: installs the pgcm build into WORK_DIR/prefix, then
# configures, builds and runs tests/package as an outside project against it.
set -euo pipefail
build=$1; work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null

# Only the public surface is installed: the blocking API, value types, errors,
# the public message protocol and the documented actor API.
expected="pgcm/actors/cluster_manager.hpp
pgcm/actors/remote_link.hpp
pgcm/actors/state_store_actor.hpp
pgcm/connection_manager.hpp
pgcm/error.hpp
pgcm/logging.hpp
pgcm/metrics.hpp
pgcm/messages/atoms.hpp
pgcm/messages/error.hpp
pgcm/messages/inspect.hpp
pgcm/messages/protocol.hpp
pgcm/param.hpp
pgcm/pgcm.hpp
pgcm/remote.hpp
pgcm/result_set.hpp
pgcm/routing.hpp
pgcm/scheduler.hpp
pgcm/state_store.hpp
pgcm/transaction.hpp
pgcm/types.hpp"
installed=$(cd "$work/prefix/include" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
if [ "$installed" != "$(LC_ALL=C sort <<<"$expected")" ]; then
  echo "installed headers differ from the public surface:" >&2
  diff <(LC_ALL=C sort <<<"$expected") <(echo "$installed") >&2 || true
  exit 1
fi
# Each installed header compiles on its own, with nothing but the prefix and CAF.
for h in $installed; do
  echo "#include <$h>" | c++ -std=c++17 -fsyntax-only -x c++ -I"$work/prefix/include" - \
    || { echo "installed header $h does not compile on its own" >&2; exit 1; }
done
cmake -S "$here" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" -j2 >/dev/null
out=$("$work/consumer/consumer")
echo "$out"
grep -q 'invalid_config: invalid config for node "n1": port' <<<"$out"
