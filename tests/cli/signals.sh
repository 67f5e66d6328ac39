#!/usr/bin/env bash
# SIGINT/SIGTERM: the first signal shuts down gracefully within
# shutdown_timeout (the running statement is cancelled on the server); a
# second one exits at once.
source "$(dirname "$0")/lib.sh"

ms() { date +%s%3N; }

# active_sql MARKER: counts the running statements tagged with MARKER.
active_sql() {
  echo "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE '%/* $1 */%' AND state = 'active' AND pid <> pg_backend_pid()"
}

# wait_active MARKER: until the tagged statement runs on node0 (seen from another pgcm).
wait_active() {
  local i
  for (( i = 0; i < 100; i++ )); do
    "$PGCM" --config "$CONFIG" query --node node0 --json "$(active_sql "$1")" \
      > "$WORK/active.json" 2>/dev/null
    python3 -c "import json,sys; sys.exit(0 if json.loads(open(sys.argv[1]).readlines()[1])[0] >= 1 else 1)" \
      "$WORK/active.json" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the test statement never showed up as active"
}

# Graceful: shutdown_timeout 3 s; the 20 s statement is cancelled.
tag=graceful-$$-$RANDOM
"$PGCM" --config "$CONFIG" query --node node0 "SELECT pg_sleep(20) /* $tag */" > "$WORK/g.out" 2> "$WORK/g.err" &
pid=$!
wait_active "$tag"
t0=$(ms)
kill -TERM $pid
wait $pid; rc=$?
took=$(( $(ms) - t0 ))
echo "graceful: exit $rc after $took ms"
[[ $rc -eq 1 ]] || fail "graceful: exit code $rc, expected 1"
(( took < 6000 )) || fail "graceful: took $took ms (shutdown_timeout is 3 s)"
grep -Eq 'interrupted|shutting_down|cancel|query_timeout' "$WORK/g.out" "$WORK/g.err" \
  || { fail "graceful: no interruption reported"; cat "$WORK/g.out" "$WORK/g.err" >&2; }

# The statement no longer runs on the server.
sleep 0.5
run left 0 "$PGCM" --config "$CONFIG" query --node node0 --json "$(active_sql "$tag")"
jsonl_check left "rows == [[0]]"

# A second signal exits at once, even with a long shutdown_timeout.
write_config "$WORK/slow.conf" 'shutdown_timeout="30s"'
tag=second-$$-$RANDOM
"$PGCM" --config "$WORK/slow.conf" query --node node0 "SELECT pg_sleep(25) /* $tag */" > "$WORK/s.out" 2> "$WORK/s.err" &
pid=$!
wait_active "$tag"
t0=$(ms)
kill -INT $pid
sleep 0.3
kill -INT $pid
wait $pid; rc=$?
took=$(( $(ms) - t0 ))
echo "second signal: exit $rc after $took ms"
[[ $rc -eq 130 ]] || { fail "second signal: exit code $rc, expected 130"; cat "$WORK/s.err" >&2; }
(( took < 2000 )) || fail "second signal: took $took ms"
grep -q 'second signal' "$WORK/s.err" || fail "second signal: no message"
# The abandoned statement would run on for 25 s: cancel it.
"$PGCM" --config "$CONFIG" query --node node0 \
  "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%/* $tag */%' AND pid <> pg_backend_pid()" >/dev/null 2>&1
finish
