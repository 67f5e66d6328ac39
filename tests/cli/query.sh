#!/usr/bin/env bash
# pgcm query against the test cluster: one node, --all, --healthy, parameters,
# --json, and a stopped node (its error shown, exit code 1).
source "$(dirname "$0")/lib.sh"

run one 0 "$PGCM" --config "$CONFIG" query --node node0 \
  'SELECT $1::int + 1 AS n, $2::text AS t, NULL::text AS z, pg_is_in_recovery() AS standby' 41 'a b'
expect one out '^ n  \|  t  \| z \| standby$' '^ 42 \| a b \|   \| f$' '^\(1 row\)$'
reject one out '^\[node0\]'
no_password one

run all 0 "$PGCM" --config "$CONFIG" query --all 'SELECT pg_is_in_recovery() AS standby'
expect all out '^\[node0\]$' '^\[node1\]$' '^\[node2\]$' '^ f$' '^ t$'
[[ $(grep -c '^(1 row)$' "$WORK/all.out") -eq 3 ]] || fail "all: expected 3 tables"

run default_all 0 "$PGCM" --config "$CONFIG" query 'SELECT 1 AS one'
[[ $(grep -c '^(1 row)$' "$WORK/default_all.out") -eq 3 ]] || fail "default_all: expected 3 tables"

run null_param 0 "$PGCM" --config "$CONFIG" query --node node1 'SELECT $1::text IS NULL AS isnull' '\N'
expect null_param out '^ t$'

run ddl 0 "$PGCM" --config "$CONFIG" query --node node0 'CREATE TEMP TABLE cli_t (x int)'
expect ddl out '^CREATE TABLE$'

run sqlerr 1 "$PGCM" --config "$CONFIG" query --node node1 'SELECT * FROM no_such_table'
expect sqlerr out 'error \(query_failed\): .*no_such_table.*\[SQLSTATE 42P01\]'

# Routed: --target picks the node by role; the output names it.
run routed_primary 0 "$PGCM" --config "$CONFIG" query --target primary 'SELECT pg_is_in_recovery() AS standby'
expect routed_primary out '^\[node0\]$' '^ f$'
run routed_standby 0 "$PGCM" --config "$CONFIG" query --target standby --max-lag 16MB --max-lag 30s \
  --after 0/1 'SELECT pg_is_in_recovery() AS standby'
expect routed_standby out '^\[node[12]\]$' '^ t$'
run routed_json 0 "$PGCM" --config "$CONFIG" query --json --target prefer-standby 'SELECT 1 AS n'
jsonl_check routed_json "len(ends) == 1 and ends[0]['success'] and ends[0]['node'] in ('node1', 'node2') and rows == [[1]]"
# A token no node has replayed: a standby-only route has no node, and says why per node.
run routed_none 1 "$PGCM" --config "$CONFIG" query --target standby --after FFFFFFFF/0 'SELECT 1'
expect routed_none out 'error \(no_eligible_node\): no eligible node for target standby: node0: primary; node1: replayed'

run json 0 "$PGCM" --config "$CONFIG" query --json --all 'SELECT 7 AS n, true AS b, $1::text AS s, NULL::int AS z' 'x"y'
jsonl_check json "[e['node'] for e in ends] == ['node0','node1','node2'] and all(e['success'] and e['rows'] == 1 and e['command'] == 'SELECT 1' for e in ends) and rows == [[7, True, 'x\"y', None]] * 3 and all([c['name'] for c in x['columns']] == ['n','b','s','z'] for x in cols) and [x['node'] for x in cols] == ['node0','node1','node2']"

run json_err 1 "$PGCM" --config "$CONFIG" query --json --node node0 'SELECT 1/0'
jsonl_check json_err "len(ends) == 1 and not ends[0]['success'] and ends[0]['error']['code'] == 'query_failed' and ends[0]['error']['sqlstate'] == '22012'"

# --csv: RFC 4180 quoting, a header row; NULL empty, an empty text "".
run csv 0 "$PGCM" --config "$CONFIG" query --csv --node node0 \
  "SELECT 1 AS a, 'x,y' AS b, 'say \"hi\"' AS c, NULL::text AS d, '' AS e, E'l1\\nl2' AS f"
printf 'a,b,c,d,e,f\n1,"x,y","say ""hi""",,"","l1\nl2"\n' > "$WORK/csv.expected"
cmp -s "$WORK/csv.out" "$WORK/csv.expected" || { fail "csv: unexpected output"; cat "$WORK/csv.out" >&2; }
run csv_all 0 "$PGCM" --config "$CONFIG" query --csv --all 'SELECT pg_is_in_recovery() AS standby'
printf 'node,standby\nnode0,f\nnode1,t\nnode2,t\n' > "$WORK/csv_all.expected"
cmp -s "$WORK/csv_all.out" "$WORK/csv_all.expected" || { fail "csv_all: unexpected output"; cat "$WORK/csv_all.out" >&2; }
run csv_json 2 "$PGCM" --config "$CONFIG" query --csv --json 'SELECT 1'
expect csv_json err 'choose one output format'

# Streamed: many rows, every one printed once; a table's widths come from its
# first chunk (1000 rows), a wider value further down overflows its column.
run big_csv 0 "$PGCM" --config "$CONFIG" query --csv --node node0 'SELECT g FROM generate_series(1, 100000) g'
[[ $(wc -l < "$WORK/big_csv.out") -eq 100001 && $(tail -n 1 "$WORK/big_csv.out") == 100000 ]] \
  || fail "big_csv: expected a header and 100000 rows"
run big_json 0 "$PGCM" --config "$CONFIG" query --json --node node0 'SELECT g FROM generate_series(1, 5000) g'
jsonl_check big_json "rows == [[g] for g in range(1, 5001)] and ends[0]['rows'] == 5000"
run widths 0 "$PGCM" --config "$CONFIG" query --node node0 \
  "SELECT CASE WHEN g = 1500 THEN 'wide-value' ELSE 'a' END AS v FROM generate_series(1, 1500) g"
expect widths out '^ v$' '^---$' '^ a$' '^ wide-value$' '^\(1500 rows\)$'

# node2 down: --all shows its error and fails; --healthy skips it and succeeds.
stop_node node2
run down_all 1 "$PGCM" --config "$CONFIG" query --all 'SELECT 1 AS one'
expect down_all out '^\[node0\]$' '^\[node1\]$' '^\[node2\] error \((connection_failed|query_timeout)\): '
[[ $(grep -c '^(1 row)$' "$WORK/down_all.out") -eq 2 ]] || fail "down_all: expected 2 tables"

run down_healthy 0 "$PGCM" --config "$CONFIG" query --healthy 'SELECT 1 AS one'
expect down_healthy out '^\[node0\]$' '^\[node1\]$'
reject down_healthy out 'node2'

run down_json 1 "$PGCM" --config "$CONFIG" query --json 'SELECT 1 AS one'
jsonl_check down_json "[e['success'] for e in ends] == [True, True, False] and ends[2]['node'] == 'node2'"

run down_one 1 "$PGCM" --config "$CONFIG" query --node node2 'SELECT 1'
expect down_one out '^error \((connection_failed|query_timeout)\): node node2'

start_node node2
run back 0 "$PGCM" --config "$CONFIG" query --node node2 'SELECT 1 AS one'
finish
