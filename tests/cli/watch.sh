#!/usr/bin/env bash
# pgcm watch driven under tmux against the test cluster: every node shown
# with health, role, latency, pool and the primary's slots; a stopped node
# turns unhealthy and back; q quits with 0, Ctrl-C too, the screen restored.
source "$(dirname "$0")/lib.sh"
command -v tmux >/dev/null || { echo "tmux is required" >&2; exit 1; }
sock=$WORK/tmux.sock
tm() { tmux -S "$sock" "$@"; }
cleanup_hooks+=("tmux -S '$sock' kill-server 2>/dev/null")

# wait_pane SESSION REGEX [SECONDS]: until a line of the pane matches.
wait_pane() {
  local i
  for (( i = 0; i < ${3:-20} * 10; i++ )); do
    tm capture-pane -p -t "$1" > "$WORK/pane.txt" 2>/dev/null
    grep -Eq -- "$2" "$WORK/pane.txt" && return 0
    sleep 0.1
  done
  fail "pane $1: nothing matches $2 after ${3:-20}s"
  sed 's/^/  pane: /' "$WORK/pane.txt" >&2
  return 1
}

start_watch() { # start_watch SESSION
  tm new-session -d -s "$1" -x 120 -y 50 \
    "env LANG=C.UTF-8 '$PGCM' --config '$CONFIG' watch 2>'$WORK/$1.err'; echo EXIT=\$? > '$WORK/$1.exit'; sleep 120"
}

wait_exit() { # wait_exit SESSION EXPECTED
  local i
  for (( i = 0; i < 100; i++ )); do [[ -f $WORK/$1.exit ]] && break; sleep 0.1; done
  if [[ $(cat "$WORK/$1.exit" 2>/dev/null) != "EXIT=$2" ]]; then
    fail "$1: expected EXIT=$2, got '$(cat "$WORK/$1.exit" 2>/dev/null)'"
    sed 's/^/  err: /' "$WORK/$1.err" >&2
  fi
}

start_watch w1
wait_pane w1 'q: quit' 30
wait_pane w1 'pgcm watch · 3 nodes · 3 healthy · primary node0'
wait_pane w1 '^   node2_slot +physical +yes ' # the slots are read a moment later
for re in '^ ● node0 +primary +healthy +127\.0\.0\.1:[0-9]+/' '^ ● node1 +standby +healthy ' \
          '^ ● node2 +standby +healthy ' '^   latency +[0-9.]+ m?s ' '^   pool +\[' \
          '^   last error +-$' '^ Replication slots on node0$' \
          '^   node1_slot +physical +yes +node1 +streaming ' '^   node2_slot +physical +yes +node2 +streaming '; do
  grep -Eq -- "$re" "$WORK/pane.txt" || { fail "w1: no line matches $re"; sed 's/^/  pane: /' "$WORK/pane.txt" >&2; }
done
if grep -qF -- "$PGCM_CLI_TEST_PASSWORD" "$WORK/pane.txt"; then fail "w1: password on screen"; fi

# Redrawn on events: node2 goes down and comes back.
stop_node node2
wait_pane w1 '^ ● node2 +standby +unhealthy ' && pass "node2 shown unhealthy"
wait_pane w1 '2 healthy'
wait_pane w1 '^   node2_slot +physical +no '
start_node node2
wait_pane w1 '^ ● node2 +standby +healthy ' 30 && pass "node2 shown healthy again"

tm send-keys -t w1 q
wait_exit w1 0
tm capture-pane -p -t w1 > "$WORK/pane.txt"
grep -q 'q: quit' "$WORK/pane.txt" && fail "w1: the view is still on screen after q (alternate screen not left)"

# Ctrl-C: graceful stop, exit code 0.
start_watch w2
wait_pane w2 'q: quit' 30
tm send-keys -t w2 C-c
wait_exit w2 0
finish
