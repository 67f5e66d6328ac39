#!/usr/bin/env bash
# A real Prometheus server (Debian's prometheus, loopback, 1 s scrape interval)
# scrapes `pgcm serve --http`; the series are read back through its query API.
source "$(dirname "$0")/lib.sh"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$PGCM" --config "$CONFIG" serve --http 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
pid=$!
cleanup_hooks+=("kill -9 $pid 2>/dev/null")
port=""
for i in $(seq 1 150); do
  port=$(sed -n 's|^pgcm: http on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$WORK/serve.out" 2>/dev/null)
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { fail "serve did not start"; cat "$WORK/serve.err" >&2; finish; }

cat > "$WORK/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pgcm
    static_configs:
      - targets: ["127.0.0.1:$port"]
YML
promtool check config "$WORK/prometheus.yml" > "$WORK/promtool.log" 2>&1 \
  || { fail "promtool rejects the config"; cat "$WORK/promtool.log" >&2; }

# The port may be taken between choosing and binding: a few tries.
for attempt in 1 2 3; do
  pport=$(free_port)
  prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb-$attempt" \
    --web.listen-address="127.0.0.1:$pport" > "$WORK/prometheus.log" 2>&1 &
  ppid=$!
  cleanup_hooks+=("kill $ppid 2>/dev/null; wait $ppid 2>/dev/null")
  for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$pport/-/ready" > /dev/null 2>&1 && break
    kill -0 $ppid 2>/dev/null || break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$pport/-/ready" > /dev/null 2>&1 && break
  kill $ppid 2>/dev/null
done
curl -sf "http://127.0.0.1:$pport/-/ready" > /dev/null 2>&1 \
  || { fail "prometheus did not start"; tail -20 "$WORK/prometheus.log" >&2; finish; }

# query NAME PROMQL: the API's JSON answer in $WORK/NAME.out.
query() {
  curl -s --max-time 10 -G "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$2" \
    > "$WORK/$1.out"
}
ok=0
for i in $(seq 1 60); do
  query healthy 'pgcm_node_healthy'
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if len(d["data"]["result"]) == 3 else 1)' \
       "$WORK/healthy.out" 2>/dev/null; then ok=1; break; fi
  sleep 0.5
done
[[ $ok -eq 1 ]] || { fail "no pgcm_node_healthy series scraped"; cat "$WORK/healthy.out" >&2; tail -20 "$WORK/prometheus.log" >&2; }
json_check healthy 'd["status"] == "success" and sorted((r["metric"]["node"], r["metric"]["job"], r["value"][1]) for r in d["data"]["result"]) == [("node0", "pgcm", "1"), ("node1", "pgcm", "1"), ("node2", "pgcm", "1")]'
query up 'up{job="pgcm"}'
json_check up 'd["data"]["result"][0]["value"][1] == "1"'
query primary 'pgcm_node_is_primary == 1'
json_check primary '[r["metric"]["node"] for r in d["data"]["result"]] == ["node0"]'
query hist 'pgcm_query_duration_seconds_bucket{node="node0",le="+Inf"}'
json_check hist 'len(d["data"]["result"]) == 1'
query pools 'sum by (state) (pgcm_pool_connections)'
json_check pools 'sorted(r["metric"]["state"] for r in d["data"]["result"]) == ["busy", "idle"]'
pass "prometheus scraped pgcm: $(cat "$WORK/healthy.out" | head -c 300)"
kill -INT $pid; wait $pid || fail "serve: non-zero exit after SIGINT"
finish
