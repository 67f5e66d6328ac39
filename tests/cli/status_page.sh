#!/usr/bin/env bash
# The status page in headless Chromium (tests/cli/status_page_browser.py over the
# DevTools protocol): every node healthy, node2 stopped -> its card turns red
# without a reload, screenshot saved as the test's artifact
# ($PGCM_ARTIFACT_DIR or the current directory: status-page.png).
# PGCM_IDLE_SECONDS=30 also prints serve's CPU use with the page open.
source "$(dirname "$0")/lib.sh"
shot="${PGCM_ARTIFACT_DIR:-$PWD}/status-page.png"
rm -f "$shot"

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

cleanup_hooks+=("'$CLUSTER_SCRIPT' start-node '$CLUSTER_DIR' node2 >/dev/null 2>&1")
timeout 240 python3 "$(dirname "$0")/status_page_browser.py" "http://127.0.0.1:$port/" \
  "$(env_val PGCM_TEST_NODES | tr ' ' ',')" node2 \
  "'$CLUSTER_SCRIPT' stop-node '$CLUSTER_DIR' node2 fast > '$WORK/stop.log' 2>&1" \
  "$shot" "${PGCM_IDLE_SECONDS:-0}" "$pid" || fail "browser check failed"
[[ -s $shot ]] && pass "screenshot $shot" || fail "no screenshot"
start_node node2
kill -INT $pid; wait $pid || fail "serve: non-zero exit after SIGINT"
finish
