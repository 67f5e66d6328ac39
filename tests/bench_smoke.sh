#!/usr/bin/env bash
# bench_smoke.sh PGCM_BENCH: the bench harness, every workload in short
# windows against the test cluster. Checks that it runs to the end, that every
# workload produced a ratio, and that no request failed. Speed is not checked
# here (that is what the bench itself is for).
set -uo pipefail
bench=$1
env_file=${PGCM_TEST_ENV_FILE:?PGCM_TEST_ENV_FILE not set}
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
timeout 240 "$bench" --env "$env_file" --duration 0.1 --rounds 1 --warmup 0.05 \
  --scale-nodes 10 --scale-seconds 2 --scale-probe 1 --json >"$out" 2>"$err"
rc=$?
fail() {
  echo "bench_smoke: $*" >&2
  tail -40 "$err" >&2
  exit 1
}
[ $rc -eq 0 ] || fail "pgcm_bench exited with $rc"
grep -q '"failed":true' "$out" && fail "a workload failed"
names=$("$bench" --env "$env_file" --list | awk '{print $1}')
[ -n "$names" ] || fail "--list printed nothing"
for w in $names; do
  grep -q "\"name\":\"$w\",\"title\"" "$out" || fail "no result for workload $w"
done
if grep -o '"errors":[0-9]*' "$out" | grep -qv '"errors":0$'; then
  fail "requests failed: $(grep -o '"errors":[0-9]*' "$out" | sort | uniq -c | tr '\n' ' ')"
fi
n_ratio=$(grep -o '"ratio":[0-9.e+-]*' "$out" | grep -vc '"ratio":0$')
n_work=$(echo "$names" | grep -vc '^scale$')
[ "$n_ratio" -ge "$n_work" ] || fail "$n_ratio ratios for $n_work measured workloads"
# The default.* workloads (issue 11) compare with node-postgres: it either ran
# (a node-pg row and a pgcm/node-pg ratio) or is skipped with a note saying
# why; PGCM_BENCH_REQUIRE_NODE_PG=1 demands that it ran.
python3 - "$out" "${PGCM_BENCH_REQUIRE_NODE_PG:-0}" <<'EOF' || fail "node-pg reference check failed"
import json, sys
d = json.load(open(sys.argv[1]))
need = sys.argv[2] == "1"
seen = 0
for w in d["workloads"]:
    if not w["name"].startswith("default."):
        continue
    seen += 1
    ran = any(c["name"] == "node-pg" for c in w["contenders"])
    skipped = any(n.startswith("node-pg: not available") for n in w.get("notes", []))
    ratio = w.get("pgcm_ratio_to", {}).get("node-pg")
    if ran == skipped:
        sys.exit(f"{w['name']}: node-pg ran={ran}, skipped note={skipped}")
    if ran and not (isinstance(ratio, (int, float)) and ratio > 0):
        sys.exit(f"{w['name']}: node-pg ran but pgcm/node-pg is {ratio}")
    if need and not ran:
        sys.exit(f"{w['name']}: node-pg did not run: {w.get('notes')}")
if seen != 2:
    sys.exit(f"{seen} default.* workloads, expected 2")
EOF
# The human-readable summary went to stderr, with the targets.
grep -q '^targets:' "$err" || fail "no targets section in the summary"
echo "bench_smoke: $(echo "$names" | wc -w) workloads ran, no request failed"
