# Helpers for the end-to-end tests of the pgcm command (sourced).
#   PGCM      the binary (first argument of every test)
#   WORK      a private temporary directory, removed on exit
# With a test cluster (PGCM_TEST_ENV_FILE set, as CTest does for
# pgcm_integration_test): env_val KEY, write_config FILE [extra manager lines].
set -uo pipefail

PGCM=${1:?usage: $0 PATH_TO_PGCM}
PGCM=$(readlink -f "$PGCM")
WORK=$(mktemp -d /tmp/pgcm-cli-test-XXXXXX)
FAILS=0
cleanup_hooks=()
on_exit() {
  local h
  for h in "${cleanup_hooks[@]:-}"; do [[ -n $h ]] && eval "$h"; done
  rm -rf "$WORK"
}
trap on_exit EXIT

env_val() { grep "^$1=" "${PGCM_TEST_ENV_FILE:?PGCM_TEST_ENV_FILE not set}" | head -1 | cut -d= -f2-; }

# start_serve NAME ARGS...: runs `pgcm --config $CONFIG serve ARGS` in the
# background (SERVER_PID, killed on exit) and waits until it announced what it
# was asked to serve: PORT (the CAF port, with --listen or without --http) and
# HTTP_PORT (with --http). Output in $WORK/NAME.out and .err.
start_serve() {
  local name=$1; shift
  local want_port=0 want_http=0 a
  for a in "$@"; do
    [[ $a == --listen* ]] && want_port=1
    [[ $a == --http* ]] && want_http=1
  done
  [[ $want_http == 1 ]] || want_port=1
  "$PGCM" --config "$CONFIG" serve "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  SERVER_PID=$!
  cleanup_hooks+=("kill -9 $SERVER_PID 2>/dev/null")
  PORT=""
  HTTP_PORT=""
  local i
  for i in $(seq 1 150); do
    PORT=$(sed -n 's/^pgcm: serving .* on [^:]*:\([0-9]*\).*/\1/p' "$WORK/$name.out" 2>/dev/null)
    HTTP_PORT=$(sed -n 's|^pgcm: http on https\?://[^ ]*:\([0-9]*\)/.*|\1|p' "$WORK/$name.out" 2>/dev/null)
    if [[ ( $want_port == 0 || -n $PORT ) && ( $want_http == 0 || -n $HTTP_PORT ) ]]; then
      return 0
    fi
    kill -0 $SERVER_PID 2>/dev/null || break
    sleep 0.1
  done
  fail "$name: the server did not start"
  cat "$WORK/$name.err" >&2
  return 1
}

# write_config FILE [KEY=VALUE...]: the three test nodes, password by
# reference; KEY=VALUE replaces or adds a [manager] option.
write_config() {
  local f=$1; shift
  declare -A opts=([health_check_interval]='"1s"' [health_check_timeout]='"3s"'
                   [query_timeout]='"5s"' [shutdown_timeout]='"3s"' [connect_timeout]='"2s"')
  local kv
  for kv in "$@"; do opts[${kv%%=*}]=${kv#*=}; done
  {
    echo "# written by tests/cli/lib.sh"
    echo "[manager]"
    for kv in "${!opts[@]}"; do echo "$kv = ${opts[$kv]}"; done
    local n
    for n in $(env_val PGCM_TEST_NODES); do
      echo
      echo "[node.$n]"
      echo "host = \"$(env_val PGCM_TEST_HOST)\""
      echo "port = $(env_val PGCM_TEST_PORT_$n)"
      echo "database = \"$(env_val PGCM_TEST_DB)\""
      echo "user = \"$(env_val PGCM_TEST_USER)\""
      echo 'password_env = "PGCM_CLI_TEST_PASSWORD"'
      echo "application_name = \"pgcm-cli-test\""
    done
  } > "$f"
}

if [[ -n ${PGCM_TEST_ENV_FILE:-} ]]; then
  export PGCM_CLI_TEST_PASSWORD
  PGCM_CLI_TEST_PASSWORD=$(env_val PGCM_TEST_PASSWORD)
  CLUSTER_DIR=$(env_val PGCM_TEST_CLUSTER_DIR)
  CLUSTER_SCRIPT=$(env_val PGCM_TEST_SCRIPT)
  CONFIG=$WORK/pgcm.conf
  write_config "$CONFIG"
fi

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# stop_node NODE: stops a test-cluster node; it is started again on exit.
stop_node() {
  "$CLUSTER_SCRIPT" stop-node "$CLUSTER_DIR" "$1" fast > "$WORK/stop-$1.log" 2>&1 \
    || { fail "could not stop $1"; cat "$WORK/stop-$1.log" >&2; }
  cleanup_hooks+=("'$CLUSTER_SCRIPT' start-node '$CLUSTER_DIR' $1 >/dev/null 2>&1")
}

# start_node NODE: starts it again (a few tries: the machine may be busy).
start_node() {
  local i
  for i in 1 2 3; do
    "$CLUSTER_SCRIPT" start-node "$CLUSTER_DIR" "$1" > "$WORK/start-$1.log" 2>&1 && return 0
    sleep 1
  done
  fail "could not restart $1"
  cat "$WORK/start-$1.log" >&2
  return 1
}
pass() { echo "ok: $*"; }

# run NAME EXPECTED_RC CMD...: runs CMD, output in $WORK/NAME.out / .err, checks the exit code.
run() {
  local name=$1 want=$2; shift 2
  timeout 60 "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  local rc=$?
  if [[ $rc -ne $want ]]; then
    fail "$name: exit code $rc, expected $want"
    sed 's/^/  out: /' "$WORK/$name.out" | head -40 >&2
    sed 's/^/  err: /' "$WORK/$name.err" | head -40 >&2
    return 1
  fi
  return 0
}

# expect NAME STREAM REGEX...: every extended REGEX matches a line of $WORK/NAME.STREAM.
expect() {
  local name=$1 stream=$2; shift 2
  local re ok=0
  for re in "$@"; do
    if ! grep -Eq -- "$re" "$WORK/$name.$stream"; then
      fail "$name: no line of std$stream matches: $re"
      ok=1
    fi
  done
  if [[ $ok -ne 0 ]]; then sed "s/^/  $stream: /" "$WORK/$name.$stream" | head -40 >&2; fi
  return $ok
}

# reject NAME STREAM REGEX: no line matches.
reject() {
  if grep -Eq -- "$3" "$WORK/$1.$2"; then
    fail "$1: a line of std$2 matches: $3"
    sed "s/^/  $2: /" "$WORK/$1.$2" | head -40 >&2
  fi
}

# no_password NAME: the cluster password appears in neither stream.
no_password() {
  if [[ -n ${PGCM_CLI_TEST_PASSWORD:-} ]] \
     && grep -qF -- "$PGCM_CLI_TEST_PASSWORD" "$WORK/$1.out" "$WORK/$1.err"; then
    fail "$1: the password appears in the output"
  fi
}

# json_check NAME PYTHON_EXPR: stdout parses as JSON and EXPR (over `d`) is true.
json_check() {
  if ! python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" \
       "$WORK/$1.out"; then
    fail "$1: JSON check failed: $2"
    head -c 2000 "$WORK/$1.out" >&2; echo >&2
  fi
}

# jsonl_check NAME PYTHON_EXPR: stdout is JSON lines (pgcm query --json) and
# EXPR is true over `L` (every line), `rows` (the row arrays, all nodes),
# `cols` (the columns objects) and `ends` (the end objects, one per node).
jsonl_check() {
  if ! python3 -c "import json,sys
L=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows=[x for x in L if isinstance(x, list)]
cols=[x for x in L if isinstance(x, dict) and 'columns' in x]
ends=[x for x in L if isinstance(x, dict) and 'success' in x]
sys.exit(0 if ($2) else 1)" "$WORK/$1.out"; then
    fail "$1: JSON lines check failed: $2"
    head -c 2000 "$WORK/$1.out" >&2; echo >&2
  fi
}

finish() {
  if [[ $FAILS -ne 0 ]]; then
    echo "$FAILS check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
  exit 0
}
