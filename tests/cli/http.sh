#!/usr/bin/env bash
# pgcm serve --http: /metrics (valid for promtool), /api/health (= health --json),
# /api/events (SSE) with 100 concurrent clients seeing a node go down and up,
# clients hanging up mid-stream, 404/405, loopback-only without TLS, HTTPS
# with and without client certificates, beside --listen.
source "$(dirname "$0")/lib.sh"

stop_server() {
  kill -INT $SERVER_PID; wait $SERVER_PID; local rc=$?
  [[ $rc -eq 0 ]] || fail "serve: exit code $rc after SIGINT, expected 0"
}

# get NAME URL [CURL ARGS...]: body in $WORK/NAME.out, status in $WORK/NAME.status,
# headers in $WORK/NAME.headers.
get() {
  local name=$1 url=$2; shift 2
  curl -s --max-time 10 -D "$WORK/$name.headers" -o "$WORK/$name.out" -w '%{http_code}' "$@" "$url" \
    > "$WORK/$name.status" 2> "$WORK/$name.err"
}
status_is() {
  local got; got=$(cat "$WORK/$1.status")
  [[ $got == "$2" ]] || { fail "$1: HTTP status $got, expected $2"; head -c 500 "$WORK/$1.out" >&2; }
}

# wait_for FILE REGEX SECONDS: until a line of FILE matches.
wait_for() {
  local i
  for i in $(seq 1 $(( $3 * 10 ))); do
    grep -Eq -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# -- alone (no --listen), loopback ------------------------------------------------
start_serve http --http 127.0.0.1:0
[[ -z $PORT ]] || fail "http only: a CAF port was published too"
base="http://127.0.0.1:$HTTP_PORT"

get metrics "$base/metrics"
status_is metrics 200
grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/metrics.headers" \
  || fail "metrics: wrong content type: $(grep -i content-type "$WORK/metrics.headers")"
expect metrics out '^pgcm_node_healthy\{node="node0"\} 1$' '^pgcm_node_is_primary\{node="node0"\} 1$' \
  '^pgcm_node_is_primary\{node="node1"\} 0$' '^# TYPE pgcm_query_duration_seconds histogram$' \
  '^pgcm_query_duration_seconds_bucket\{node="node2",le="\+Inf"\} [0-9]+$'
promtool check metrics < "$WORK/metrics.out" > "$WORK/promtool.log" 2>&1 \
  || { fail "promtool rejects /metrics"; cat "$WORK/promtool.log" >&2; }

get api_health "$base/api/health"
status_is api_health 200
json_check api_health 'd["total"] == 3 and d["healthy"] == 3 and [n["id"] for n in d["nodes"]] == ["node0", "node1", "node2"]'
run cli_health_json 0 "$PGCM" --config "$CONFIG" health --json
# Same shape as pgcm health --json (same writer): same keys at every level.
python3 - "$WORK/api_health.out" "$WORK/cli_health_json.out" <<'PY' || fail "api/health and health --json differ in shape"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def keys(d):
    return {k: keys(v) if isinstance(v, dict) else None for k, v in d.items()}
assert keys(a) == keys(b), (keys(a), keys(b))
assert [keys(n) for n in a["nodes"]] == [keys(n) for n in b["nodes"]]
PY
no_password api_health

get page "$base/"
status_is page 200
expect page out '<title>pgcm status</title>' 'new EventSource\("/api/events"\)'
reject page out '(src|href)="https?://'

get not_found "$base/nope"
status_is not_found 404
get post_metrics "$base/metrics" -X POST -d x=1
status_is post_metrics 405
grep -qi '^allow: GET, HEAD' "$WORK/post_metrics.headers" || fail "405 without Allow header"
get delete_events "$base/api/events" -X DELETE
status_is delete_events 405

# -- 100 concurrent event streams ------------------------------------------------
clients=()
for i in $(seq 1 100); do
  curl -s -N --max-time 120 "$base/api/events" > "$WORK/sse-$i.out" 2>/dev/null &
  clients+=($!)
done
cleanup_hooks+=("kill ${clients[*]} 2>/dev/null")
connected=0
for i in $(seq 1 100); do
  wait_for "$WORK/sse-$i.out" '^: connected' 20 && connected=$((connected + 1))
done
[[ $connected -eq 100 ]] || fail "100 streams: only $connected connected"
# The server still answers everything else at once.
get metrics_busy "$base/metrics"
status_is metrics_busy 200
get health_busy "$base/api/health"
status_is health_busy 200
pass "100 event streams open; /metrics and /api/health still answer"

stop_node node2
seen=0
for i in $(seq 1 100); do
  # 30 s for the first (the probe needs a few failures), then they all have it.
  wait_for "$WORK/sse-$i.out" '^data: \{.*"type":"node:health","node":"node2".*"status":"unhealthy"' \
    $([[ $i -eq 1 ]] && echo 30 || echo 5) && seen=$((seen + 1))
done
[[ $seen -eq 100 ]] || { fail "node2 down: only $seen of 100 streams saw it"; head -c 2000 "$WORK/sse-1.out" >&2; }
python3 - "$WORK/sse-1.out" <<'PY' || fail "an event line is not one JSON object"
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("data: "):
        d = json.loads(line[6:])
        assert {"time", "type", "node"} <= d.keys(), d
PY
get metrics_down "$base/metrics"
expect metrics_down out '^pgcm_node_healthy\{node="node2"\} 0$' '^pgcm_node_healthy\{node="node0"\} 1$'

# Half of the clients hang up mid-stream (killed); the rest still get events.
{
  for i in $(seq 1 50); do kill -9 "${clients[$((i - 1))]}"; done
  wait "${clients[@]:0:50}"
} 2>/dev/null
start_node node2
seen=0
for i in $(seq 51 100); do
  wait_for "$WORK/sse-$i.out" '^data: \{.*"type":"node:health","node":"node2".*"status":"healthy"' \
    $([[ $i -eq 51 ]] && echo 30 || echo 5) && seen=$((seen + 1))
done
[[ $seen -eq 50 ]] || fail "node2 up: only $seen of the 50 remaining streams saw it"
{
  for i in $(seq 51 100); do kill "${clients[$((i - 1))]}"; done
  wait "${clients[@]}"
} 2>/dev/null
# A new stream and the other endpoints still work after the hang-ups.
curl -s -N --max-time 3 "$base/api/events" > "$WORK/sse-after.out" 2>/dev/null
grep -q '^: connected' "$WORK/sse-after.out" || fail "no event stream after clients hung up"
get metrics_after "$base/metrics"
status_is metrics_after 200
kill -0 $SERVER_PID 2>/dev/null || fail "serve died"
pass "clients that hung up were dropped; serve still answers"
# SIGINT with a stream open: the stream ends and serve exits promptly.
curl -s -N --max-time 60 "$base/api/events" > "$WORK/sse-open.out" 2>/dev/null &
open_client=$!
wait_for "$WORK/sse-open.out" '^: connected' 10 || fail "no stream before SIGINT"
start=$(date +%s)
stop_server
wait $open_client 2>/dev/null
(( $(date +%s) - start < 15 )) || fail "serve took $(( $(date +%s) - start )) s to stop with a stream open"


# -- refused without TLS off loopback -------------------------------------------------
run http_public 2 "$PGCM" --config "$CONFIG" serve --http 0.0.0.0:0
expect http_public err 'http 0.0.0.0:0' 'TLS'
run http_bad 2 "$PGCM" --config "$CONFIG" serve --http nonsense
expect http_bad err '--http nonsense'

# -- beside --listen -----------------------------------------------------------------
start_serve both --listen 127.0.0.1:0 --http 127.0.0.1:0
[[ -n $PORT ]] || fail "both: no CAF port printed"
run both_remote 0 "$PGCM" health --remote "127.0.0.1:$PORT"
get both_metrics "http://127.0.0.1:$HTTP_PORT/metrics"
status_is both_metrics 200
stop_server

# -- HTTPS ---------------------------------------------------------------------------
certs=$WORK/certs; mkdir -p "$certs"
( cd "$certs"
  for ca in ca other; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$ca" -keyout $ca.key -out $ca.pem
  done
  for leaf in server:ca client:ca stranger:other; do
    n=${leaf%%:*}; c=${leaf#*:}
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout $n.key -out $n.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > $n.ext
    openssl x509 -req -in $n.csr -CA $c.pem -CAkey $c.key -CAcreateserial -days 2 -extfile $n.ext -out $n.pem
  done ) > "$WORK/openssl.log" 2>&1 || { fail "openssl"; cat "$WORK/openssl.log" >&2; }

start_serve https --http 127.0.0.1:0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key"
expect https out '^pgcm: http on https://127.0.0.1:'
get https_metrics "https://127.0.0.1:$HTTP_PORT/metrics" --cacert "$certs/ca.pem"
status_is https_metrics 200
get https_plain "http://127.0.0.1:$HTTP_PORT/metrics"
[[ $(cat "$WORK/https_plain.status") == 200 ]] && fail "plain HTTP answered on the HTTPS port"
pass "HTTPS without client certificates"
stop_server

start_serve mtls --http 127.0.0.1:0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" --tls-ca "$certs/ca.pem"
expect mtls out 'client certificates required'
get mtls_ok "https://127.0.0.1:$HTTP_PORT/api/health" --cacert "$certs/ca.pem" \
  --cert "$certs/client.pem" --key "$certs/client.key"
status_is mtls_ok 200
get mtls_none "https://127.0.0.1:$HTTP_PORT/api/health" --cacert "$certs/ca.pem"
[[ $(cat "$WORK/mtls_none.status") == 200 ]] && fail "mTLS: answered a client without certificate"
get mtls_stranger "https://127.0.0.1:$HTTP_PORT/api/health" --cacert "$certs/ca.pem" \
  --cert "$certs/stranger.pem" --key "$certs/stranger.key"
[[ $(cat "$WORK/mtls_stranger.status") == 200 ]] && fail "mTLS: answered a certificate from another CA"
pass "HTTPS with client certificates"
stop_server

# TLS allows a public address (bound on all interfaces for a moment).
start_serve https_public --http 0.0.0.0:0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key"
stop_server
run https_missing 2 "$PGCM" --config "$CONFIG" serve --http 127.0.0.1:0 --tls-cert /nope.pem --tls-key /nope.key
expect https_missing err '/nope.pem'
finish
