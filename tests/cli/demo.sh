#!/usr/bin/env bash
# pgcm demo: --once prints a snapshot of a fresh 3-node cluster and cleans
# up; the interactive demo under tmux stops everything on Ctrl-C.
source "$(dirname "$0")/lib.sh"

run once 0 env LANG=C.UTF-8 "$PGCM" demo --once
expect once out '^ pgcm demo · 3 nodes · 3 healthy · primary node0' \
  '^ ● node0 +primary +healthy +127\.0\.0\.1:[0-9]+/pgcm_test' \
  '^ ● node1 +standby +healthy ' '^ ● node2 +standby +healthy ' \
  '^   latency +[0-9.]+ m?s ' '^   pool +\[' \
  '^ Replication slots on node0$' '^   node1_slot +physical +yes +node1 +streaming' \
  '^   node2_slot +physical +yes +node2 +streaming'
expect once err '^pgcm demo: starting a primary and 2 replicas in /tmp/pgcm-demo-' \
  'stopped and removed'
dir=$(sed -n 's/^pgcm demo: starting a primary and 2 replicas in //p' "$WORK/once.err")
[[ -n $dir && ! -e $dir ]] || fail "once: the cluster directory '$dir' is still there"
pgrep -f -- "-D $dir/" >/dev/null && fail "once: postgres processes of $dir still run"

# ASCII and no colour when the locale is not UTF-8 and stdout no terminal.
run once_ascii 0 env LANG=C LC_ALL=C "$PGCM" demo --once --color=never
expect once_ascii out '^ pgcm demo - 3 nodes - 3 healthy - primary node0' '^ \* node0 +primary +healthy '
reject once_ascii out $'\x1b'

# Interactive, under tmux: Ctrl-C stops view, manager and cluster.
if command -v tmux >/dev/null; then
  sock=$WORK/tmux.sock
  cleanup_hooks+=("tmux -S '$sock' kill-server 2>/dev/null")
  tmux -S "$sock" new-session -d -s demo -x 120 -y 50 \
    "env LANG=C.UTF-8 '$PGCM' demo 2>'$WORK/demo.err'; echo EXIT=\$? > '$WORK/demo.exit'; sleep 120"
  for (( i = 0; i < 600; i++ )); do
    tmux -S "$sock" capture-pane -p -t demo > "$WORK/pane.txt"
    grep -q 'q: quit' "$WORK/pane.txt" && grep -q '3 healthy' "$WORK/pane.txt" && break
    sleep 0.1
  done
  grep -q '3 healthy' "$WORK/pane.txt" || { fail "demo: view not up"; sed 's/^/  pane: /' "$WORK/pane.txt" >&2; }
  grep -Eq '^   pool +\[' "$WORK/pane.txt" || fail "demo: no pool gauge"
  tmux -S "$sock" send-keys -t demo C-c
  for (( i = 0; i < 300; i++ )); do [[ -f $WORK/demo.exit ]] && break; sleep 0.1; done
  [[ $(cat "$WORK/demo.exit" 2>/dev/null) == EXIT=0 ]] || { fail "demo: exit $(cat "$WORK/demo.exit" 2>/dev/null)"; cat "$WORK/demo.err" >&2; }
  dir=$(sed -n 's/^pgcm demo: starting a primary and 2 replicas in //p' "$WORK/demo.err")
  [[ -n $dir && ! -e $dir ]] || fail "demo: the cluster directory '$dir' is still there"
  grep -q 'stopped and removed' "$WORK/demo.err" || fail "demo: cluster not stopped"
else
  echo "tmux not installed: interactive demo not tested"
fi
finish
