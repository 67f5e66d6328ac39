#!/usr/bin/env bash
# run.sh WORK_DIR [SECONDS]: builds the libFuzzer targets with clang
# (-fsanitize=fuzzer,address,undefined) and runs each for SECONDS (default 20)
# from its checked-in seed corpus (tests/fuzz/corpus/<target>). A crash fails
# the run; libFuzzer leaves the input in WORK_DIR: add it to the corpus and a
# regression test, then fix.
set -euo pipefail
work=$1
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if ! command -v clang++ >/dev/null; then
  echo "run.sh: clang++ not installed (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
mkdir -p "$work"
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/src" -I/usr/include/postgresql)
lib_sources=("$root/src/config_file.cpp" "$root/src/conninfo.cpp" "$root/src/password_source.cpp"
             "$root/src/types.cpp" "$root/src/result_set.cpp" "$root/src/param.cpp")
for target in config_file conninfo row_conversion; do
  bin="$work/fuzz_$target"
  if [ ! -x "$bin" ] || [ "$here/fuzz_$target.cpp" -nt "$bin" ]; then
    clang++ "${flags[@]}" "$here/fuzz_$target.cpp" "${lib_sources[@]}" -lpq -o "$bin"
  fi
  corpus="$work/corpus_$target"
  rm -rf "$corpus"; mkdir -p "$corpus"
  cp "$here/corpus/$target"/* "$corpus"/ 2>/dev/null || true
  echo "== fuzz_$target for ${secs}s"
  (cd "$work" && "$bin" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 "$corpus" \
     "$here/corpus/$target" 2>&1 | tail -5)
done
echo "fuzz: 3 targets ran clean"
