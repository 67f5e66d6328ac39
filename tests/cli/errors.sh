#!/usr/bin/env bash
# pgcm usage and config errors: exit code 2 and a message naming the bad
# flag, file, line or field. Needs no server (nothing gets to connect).
source "$(dirname "$0")/lib.sh"
unset PGCM_CONFIG

usage_error() { # usage_error NAME REGEX ARGS...
  local name=$1 re=$2; shift 2
  run "$name" 2 "$PGCM" "$@" && expect "$name" err "$re"
}

usage_error no_command 'missing command'
usage_error bad_command 'unknown command "frobnicate"' frobnicate
usage_error bad_flag 'unknown option --bogus' health --bogus
usage_error no_value '--config needs a value' health --config
usage_error json_on_watch '--json is not supported by pgcm watch' watch --json --node a=host=x
usage_error once_on_health '--once is not supported by pgcm health' health --once
usage_error node_on_demo '--node ID=CONNINFO is not supported by pgcm demo' demo --node a=host=x
usage_error no_sql 'pgcm query: missing SQL' query --node a=host=x
usage_error two_targets '--node ID, --all, --healthy and --target exclude each other' query --all --healthy 'SELECT 1'
usage_error target_and_node '--node ID, --all, --healthy and --target exclude each other' query --target any --node n1 'SELECT 1'
usage_error bad_target '--target: unknown target "master" \(primary, standby, prefer-standby, any\)' query --target master 'SELECT 1'
usage_error bad_max_lag '--max-lag: invalid lag "16" \(bytes as 16MB' query --target standby --max-lag 16 'SELECT 1'
usage_error lag_without_target '--max-lag and --after need --target' query --max-lag 2s 'SELECT 1'
usage_error bad_after '--after: invalid WAL position "16-B3"' query --target standby --after 16-B3 'SELECT 1'
usage_error bad_timeout '--timeout: invalid duration "soon"' query --timeout soon 'SELECT 1'
usage_error bad_level '--log-level: unknown level "loud"' health --log-level loud
PGCM_LOG_LEVEL=loud usage_error bad_env_level 'PGCM_LOG_LEVEL="loud" is not a log level \(valid: trace, debug' health
usage_error bad_color '--color: expected auto, always or never' watch --color=sometimes
usage_error event_log_on_health '--event-log is not supported by pgcm health' health --event-log x.jsonl
usage_error event_log_max_alone '--event-log-max needs --event-log FILE' watch --event-log-max 1MB --node a=host=x
usage_error event_log_max_bad '--event-log-max: invalid size "10XB"' watch --event-log x --event-log-max 10XB
usage_error event_log_max_small '--event-log-max: at least 1KB' serve --listen 127.0.0.1:0 --event-log x --event-log-max 100
usage_error event_log_empty '--event-log needs a file name' watch --event-log=
usage_error event_log_unwritable '^pgcm: --event-log /nonexistent/dir/e.jsonl: cannot open the file: No such file' \
  serve --listen 127.0.0.1:0 --event-log /nonexistent/dir/e.jsonl --node a=host=x
usage_error no_nodes 'no nodes: give --config FILE or --node ID=CONNINFO' health
usage_error bad_conninfo '^pgcm: --node a: invalid connection string' health --node 'a=host=x port'
usage_error refused_keyword '^pgcm: --node a: connection keyword "sslcert" is not supported' health --node 'a=host=x sslcert=/c.pem'
usage_error bad_port '^pgcm: --node a: invalid port "99999"' health --node 'a=host=x port=99999'
usage_error bad_id 'invalid node id "a b"' health --node 'a b=host=x'
usage_error dup_node 'a node with id "a" is defined twice' health --node a=host=x --node a=host=y
usage_error unknown_target '^pgcm: --node c: no such node \(nodes: a\)' query --node a=host=x --node c 'SELECT 1'
usage_error missing_file '^pgcm: /nonexistent/pgcm.conf: cannot read the file' health --config /nonexistent/pgcm.conf

# Config files: FILE:LINE: FIELD: message.
conf=$WORK/bad.conf
bad_config() { # bad_config NAME REGEX (file content on stdin)
  cat > "$conf"
  usage_error "$1" "^pgcm: $conf:$2" health --config "$conf"
}
printf '[node.a]\nhost = "h"\ndatabase = "d"\nuser = "u"\nport = 99999\n' | bad_config port '5: port: must be an integer from 1 to 65535'
printf '[manager]\nhealth_check_interval = "fast"\n' | bad_config duration '2: health_check_interval: invalid duration "fast"'
printf '[node.a]\nhots = "h"\n' | bad_config unknown_field '2: hots: unknown field in \[node.a\]'
printf '[node.a]\nhost = "h\n' | bad_config unterminated '2: host: Error while parsing string: unescaped control characters'
printf '[node.a]\nhost = h\n' | bad_config unquoted '2: host: .*could not determine value type \(strings need quotes'
printf '[node.a]\nport = 5432\nport = 5433\n' | bad_config twice "3: port: .*cannot redefine existing integer 'port'"
printf '[node.a]\nhost = "h"\ndatabase = "d"\n' | bad_config missing_user '1: user: missing in \[node.a\] \(required\)'
printf '[node.a]\nhost = "h"\ndatabase = "d"\nuser = "u"\npassword_env = "PGCM_NOT_SET_ANYWHERE"\n' \
  | bad_config env_unset '5: password_env: environment variable PGCM_NOT_SET_ANYWHERE is not set'
printf '[node.a]\nhost = "h"\ndatabase = "d"\nuser = "u"\nssl.enabled = true\nssl.ca = "/nonexistent/ca.crt"\n' \
  | bad_config unreadable_ca '6: ssl.ca: .*cannot be read'
printf '[node.a]\nhost = "h"\ndatabase = "d"\nuser = "u"\npool.min = 5\npool.max = 2\n' \
  | bad_config pool_range '5: pool.min: .*must not exceed pool.max'
printf '[nodes.a]\n' | bad_config section '1: nodes: unknown section \[nodes\]'
printf '[manager]\nquery_timeout = "1s"\n' > "$conf"
usage_error conf_no_nodes "no nodes: $conf defines no \\[node.ID\\] section" health --config "$conf"

# $PGCM_CONFIG stands in for --config.
printf '[node.a]\nhost = "h"\ndatabase = "d"\nuser = "u"\nbogus = 1\n' > "$conf"
run env_config 2 env PGCM_CONFIG="$conf" "$PGCM" health && expect env_config err "^pgcm: $conf:5: bogus: unknown field"

# Help works everywhere and exits 0.
for c in "" health query watch demo; do
  run "help_$c" 0 "$PGCM" $c --help && expect "help_$c" out '^Usage: pgcm'
done
run help_cmd 0 "$PGCM" help query && expect help_cmd out '^Usage: pgcm query'
run version 0 "$PGCM" --version && expect version out '^pgcm [0-9]+\.[0-9]+'
finish
