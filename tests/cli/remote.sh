#!/usr/bin/env bash
# pgcm serve + --remote: same results as local, mutual TLS (certificates made
# here with openssl), a client with the wrong CA refused, non-loopback without
# TLS refused, the server killed mid-request (the client's error within a
# second, not at its timeout).
source "$(dirname "$0")/lib.sh"

# Plain, loopback.
start_serve serve --listen 127.0.0.1:0
run remote_health 0 "$PGCM" health --remote "127.0.0.1:$PORT"
expect remote_health out '^ node0 +\| primary +\| healthy ' '^ node1 +\| standby +\| healthy ' '^\(3 rows\)$'
run local_query 0 "$PGCM" --config "$CONFIG" query --json 'SELECT $1::int * 2 AS v, pg_is_in_recovery() AS r' 21
run remote_query 0 "$PGCM" query --remote "127.0.0.1:$PORT" --json 'SELECT $1::int * 2 AS v, pg_is_in_recovery() AS r' 21
if ! diff <(python3 -c 'import json,sys; print([json.dumps(json.loads(l), sort_keys=True) for l in open(sys.argv[1])])' "$WORK/local_query.out") \
          <(python3 -c 'import json,sys; print([json.dumps(json.loads(l), sort_keys=True) for l in open(sys.argv[1])])' "$WORK/remote_query.out") >/dev/null; then
  fail "remote query results differ from local ones"
fi
run remote_one_node 0 "$PGCM" query --remote "127.0.0.1:$PORT" --node node1 'SELECT 7 AS seven'
expect remote_one_node out '^ +7$'
run remote_unknown_node 1 "$PGCM" query --remote "127.0.0.1:$PORT" --node nope 'SELECT 1'
expect remote_unknown_node out 'not found'
no_password remote_health

# Killed mid-request: the client fails at once, not at its 30 s timeout.
"$PGCM" query --remote "127.0.0.1:$PORT" --node node0 --timeout 30s 'SELECT pg_sleep(20)' \
  > "$WORK/killed.out" 2> "$WORK/killed.err" &
client=$!
# Kill only once the request is running on the server (a busy machine may
# take more than a second to start the client).
for i in $(seq 1 60); do
  "$PGCM" --config "$CONFIG" query --node node0 --json \
    "SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)'" \
    > "$WORK/sleeping.out" 2>/dev/null
  grep -q '^\[[1-9]' "$WORK/sleeping.out" && break
  sleep 0.25
done
grep -q '^\[[1-9]' "$WORK/sleeping.out" || fail "killed server: the request never reached node0"
kill -9 $SERVER_PID
start=$(date +%s%N)
wait $client; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $rc -eq 1 ]] || fail "killed server: client exit code $rc, expected 1"
[[ $ms -lt 1500 ]] || fail "killed server: client answered after $ms ms"
grep -q "connection lost\|remote_disconnected\|remote manager" "$WORK/killed.err" "$WORK/killed.out" \
  || { fail "killed server: no clear error"; cat "$WORK/killed.err" >&2; }
pass "server killed: client answered in $ms ms"

# Non-loopback without TLS is refused (exit 2, names the flag).
run plain_public 2 "$PGCM" --config "$CONFIG" serve --listen 0.0.0.0:0
expect plain_public err 'listen 0.0.0.0:0' 'TLS'

# Mutual TLS.
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
start_serve tls --listen 127.0.0.1:0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" --tls-ca "$certs/ca.pem"
expect tls out 'mutual TLS'
run tls_health 0 "$PGCM" health --remote "127.0.0.1:$PORT" --tls-cert "$certs/client.pem" --tls-key "$certs/client.key" --tls-ca "$certs/ca.pem"
expect tls_health out '^ node0 +\| primary +\| healthy '
run tls_stranger 1 "$PGCM" health --remote "127.0.0.1:$PORT" --tls-cert "$certs/stranger.pem" --tls-key "$certs/stranger.key" --tls-ca "$certs/other.pem"
expect tls_stranger err 'cannot connect to remote manager'
run tls_plain_client 1 "$PGCM" health --remote "127.0.0.1:$PORT"
run tls_half 2 "$PGCM" health --remote "127.0.0.1:$PORT" --tls-ca "$certs/ca.pem"
expect tls_half err 'go together'
run tls_missing 2 "$PGCM" health --remote "127.0.0.1:$PORT" --tls-cert /nope.pem --tls-key /nope.key --tls-ca /nope-ca.pem
expect tls_missing err '/nope.pem'
run remote_and_config 2 "$PGCM" --config "$CONFIG" health --remote "127.0.0.1:$PORT"
expect remote_and_config err 'cannot be combined with --remote'
kill -INT $SERVER_PID; wait $SERVER_PID; rc=$?
[[ $rc -eq 0 ]] || fail "serve: exit code $rc after SIGINT, expected 0"
finish
