#!/usr/bin/env bash
# pgcm health against the test cluster: table, --json, nodes from --node
# (keyword string and URI, password from libpq's PGPASSWORD), a stopped node.
source "$(dirname "$0")/lib.sh"

run health 0 "$PGCM" --config "$CONFIG" health
expect health out '^ +node +\| +role +\| status +\| timeline \| +lag +\| latency +\| failures +\| pool total +\| idle +\| waiting +\| last error / conflict' \
  '^ node0 +\| primary +\| healthy +\| +1 \| +- \| +[0-9.]+ m?s +\| +0 \|' \
  '^ node1 +\| standby +\| healthy ' '^ node2 +\| standby +\| healthy ' '^\(3 rows\)$'
no_password health

run health_json 0 "$PGCM" --config "$CONFIG" health --json
json_check health_json "d['total'] == 3 and d['healthy'] == 3 and [n['id'] for n in d['nodes']] == ['node0','node1','node2'] and d['nodes'][0]['role'] == 'primary' and all(n['status'] == 'healthy' and n['consecutive_failures'] == 0 and n['latency_us'] > 0 and n['pool']['total_connections'] >= 1 for n in d['nodes']) and d['nodes'][1]['role'] == 'standby' and all(n['timeline'] == 1 and n['wal_lsn'] and n['conflict'] is None for n in d['nodes']) and len({n['system_identifier'] for n in d['nodes']}) == 1 and d['nodes'][1]['lag_bytes'] is not None and d['nodes'][0]['receive_lsn'] is None"
no_password health_json

# Nodes on the command line; libpq's PGPASSWORD supplies the password.
host=$(env_val PGCM_TEST_HOST); db=$(env_val PGCM_TEST_DB); user=$(env_val PGCM_TEST_USER)
run health_nodes 0 env PGPASSWORD="$PGCM_CLI_TEST_PASSWORD" "$PGCM" health \
  --node "p=host=$host port=$(env_val PGCM_TEST_PORT_node0) dbname=$db user=$user" \
  --node "r1=postgresql://$user@$host:$(env_val PGCM_TEST_PORT_node1)/$db?sslmode=verify-full&sslrootcert=$(env_val PGCM_TEST_CA)"
expect health_nodes out '^ p +\| primary +\| healthy ' '^ r1 +\| standby +\| healthy ' '^\(2 rows\)$'
no_password health_nodes

# A node that is down: unhealthy, its error shown, exit code 1.
stop_node node2
run health_down 1 "$PGCM" --config "$CONFIG" health
expect health_down out '^ node0 +\| primary +\| healthy ' '^ node2 +\| unknown +\| unhealthy .*connection' 
run health_down_json 1 "$PGCM" --config "$CONFIG" health --json
json_check health_down_json "d['healthy'] == 2 and d['nodes'][2]['status'] == 'unhealthy' and 'connection' in d['nodes'][2]['last_error']"
start_node node2
finish
