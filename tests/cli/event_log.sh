#!/usr/bin/env bash
# pgcm serve --event-log: one JSON line per event (node:added and node:health
# for every node), a stopped node's unhealthy event, node:removed at shutdown;
# every line valid JSON with time, type and node; no password. Then the same
# from pgcm watch --once --event-log.
source "$(dirname "$0")/lib.sh"

log=$WORK/events.jsonl

# wait_for_line DESCRIPTION PYTHON_EXPR: waits (60 s at most) until a line of
# the event log (any of its files) satisfies EXPR over `e` (the parsed line).
wait_for_line() {
  local what=$1 expr=$2 i
  for i in $(seq 1 120); do
    if python3 - "$log" "$expr" <<'EOF'
import json, sys, glob
path, expr = sys.argv[1], sys.argv[2]
for f in sorted(glob.glob(path + '*')):
    for line in open(f):
        e = json.loads(line)
        if eval(expr):
            sys.exit(0)
sys.exit(1)
EOF
    then
      pass "event log: $what"
      return 0
    fi
    sleep 0.5
  done
  fail "event log: no line with $what after 60 s"
  cat "$log"* >&2
  return 1
}

"$PGCM" --config "$CONFIG" serve --listen 127.0.0.1:0 --event-log "$log" --event-log-max 64KB \
  > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER_PID=$!
cleanup_hooks+=("kill -9 $SERVER_PID 2>/dev/null")

for n in node0 node1 node2; do
  wait_for_line "node:added for $n" "e['type'] == 'node:added' and e['node'] == '$n'"
  wait_for_line "$n healthy" \
    "e['type'] == 'node:health' and e['node'] == '$n' and e['health']['status'] == 'healthy'"
done
wait_for_line "node0 is the primary" \
  "e['type'] == 'node:health' and e['node'] == 'node0' and e['health']['role'] == 'primary'"
wait_for_line "pool stats" "e['type'] == 'pool:stats' and e['pool']['total_connections'] >= 1"

stop_node node2
wait_for_line "node2 unhealthy after its server stopped" \
  "e['type'] == 'node:health' and e['node'] == 'node2' and e['health']['status'] == 'unhealthy' and e['health']['last_error']"
start_node node2
wait_for_line "node2 healthy again" \
  "e['type'] == 'node:health' and e['node'] == 'node2' and e['health']['status'] == 'healthy' and e['health']['consecutive_failures'] == 0 and e['time'] > '$(date -u +%Y-%m-%dT%H:%M:%S)'"

kill -INT $SERVER_PID; wait $SERVER_PID; rc=$?
[[ $rc -eq 0 ]] || { fail "serve: exit code $rc after SIGINT, expected 0"; cat "$WORK/serve.err" >&2; }
wait_for_line "node:removed at shutdown" "e['type'] == 'node:removed'"

# Every line of every file: JSON with an ISO-8601 UTC time (ms), a type and a
# node; files within the size limit; at most FILE.1..FILE.3.
python3 - "$log" <<'EOF' || fail "event log: malformed lines or files"
import json, sys, glob, os, re
path = sys.argv[1]
n = 0
for f in glob.glob(path + '*'):
    assert re.fullmatch(re.escape(path) + r'(\.[123])?', f), 'unexpected file ' + f
    assert os.path.getsize(f) <= 64 * 1024, f + ' is too large'
    for line in open(f):
        e = json.loads(line)
        assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', e['time']), line
        assert e['type'] in ('node:added', 'node:removed', 'node:health', 'node:connected',
                             'node:disconnected', 'node:role', 'pool:stats', 'event_log_dropped'), line
        assert e['type'] == 'event_log_dropped' or e['node'] in ('node0', 'node1', 'node2'), line
        n += 1
print(n, 'lines checked')
EOF
if grep -qF -- "$PGCM_CLI_TEST_PASSWORD" "$log"*; then fail "the password appears in the event log"; fi
# pgcm watch --once --event-log: the same events from the watch command,
# node:removed for every node once it exits.
wlog=$WORK/watch-events.jsonl
run watch_once 0 "$PGCM" --config "$CONFIG" watch --once --color=never --event-log "$wlog"
python3 - "$wlog" <<'EOF2' || { fail "watch --event-log: missing events"; cat "$wlog" >&2; }
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
nodes = {'node0', 'node1', 'node2'}
def seen(t, cond=lambda e: True):
    return {e['node'] for e in lines if e['type'] == t and cond(e)}
assert seen('node:added') == nodes, seen('node:added')
assert seen('node:health', lambda e: e['health']['status'] == 'healthy') == nodes
assert seen('node:removed') == nodes, seen('node:removed')
EOF2
finish
