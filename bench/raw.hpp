#pragma once

// The raw-libpq references: the best plain libpq client for the same work
// with the same number of connections.

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

namespace bench {

/// `threads` threads, each with its own blocking connection to `srv`,
/// looping on the statement (prepared once per connection when `prepared`,
/// else PQexec with the simple query protocol). `label`: the contender's
/// name (default "raw-threads").
contender_ptr make_raw_threads(const cluster_info& c, const server& srv, std::string sql,
                               int threads, bool prepared, std::string label = {});

/// Transactions: `threads` threads, each with its own blocking connection to
/// `srv`, looping on BEGIN; `update_sql` (prepared, $1 = the thread's own row
/// of bench_tx); COMMIT: three round trips, as a plain libpq client does.
contender_ptr make_raw_tx(const cluster_info& c, const server& srv, std::string update_sql,
                          int threads);

/// Creates bench_tx (id int primary key, v bigint) with rows 1..64 if missing.
void ensure_tx_table(const cluster_info& c, const server& srv);

/// One thread driving non-blocking connections with poll(): `conns_per_server`
/// connections to each server in `servers`; `in_flight` operations kept
/// outstanding; one operation = the prepared statement on every server in
/// `servers` (a fan-out round when there are several; done when all answered).
/// `pipeline_depth` 1 = one statement per connection at a time (requests
/// beyond that wait in a FIFO queue per server); > 1 = libpq pipeline mode
/// with up to that many statements per connection.
contender_ptr make_raw_poll(const cluster_info& c, std::vector<server> servers, std::string sql,
                            int conns_per_server, int in_flight, int pipeline_depth,
                            std::string label);

/// `callers` blocking caller threads sharing `conns` connections to `srv`
/// (the floor of a blocking-call pool in plain libpq): `pipeline_depth` 1 =
/// a mutex-guarded idle stack, a caller runs PQexecPrepared on the connection
/// it took; > 1 = callers hand requests to one poll() thread driving the
/// connections in pipeline mode up to that depth and wait for their answer.
contender_ptr make_raw_callers(const cluster_info& c, const server& srv, std::string sql,
                               int callers, int conns, int pipeline_depth);

/// `callers` blocking caller threads fanning out over `servers`: each takes
/// one of `conns_per_server` idle connections of every server, sends the
/// prepared statement on all, poll()s until all answered and puts them back
/// (the floor of a blocking fan-out API in plain libpq).
contender_ptr make_raw_callers_fanout(const cluster_info& c, std::vector<server> servers,
                                      std::string sql, int callers, int conns_per_server);

/// Opens `per_server` connections to each server at once (PQconnectStartParams
/// + poll() on one thread) and measures until all are open. Each run() is one
/// startup (d is ignored); op latency = time to all open.
contender_ptr make_raw_startup(const cluster_info& c, std::vector<server> servers, int per_server);

/// Opened connections kept idle (for the scale workload's raw side).
struct raw_conn_set {
  std::vector<void*> conns; // PGconn*
  int failed = 0;
  std::string first_error;
  ~raw_conn_set();
};

/// Opens one connection per entry of `targets` in parallel; returns when all
/// are open or failed.
void open_parallel(const cluster_info& c, const std::vector<server>& targets, raw_conn_set& out);

/// The scale workload's raw side, run in a child process: `nodes` idle plain
/// libpq connections; prints one JSON object on stdout. Returns the exit code.
int scale_child_raw(const cluster_info& c, int nodes, double seconds, double probe_seconds);

} // namespace bench
