#pragma once

// pgcm's side of each workload: the blocking facade (N client threads each
// looping on query()/query_all()) and the actor API (one requester actor
// keeping N requests outstanding).

#include <memory>
#include <string>
#include <vector>

#include "common.hpp"

namespace bench {

/// The actor system pgcm runs in for the whole bench run (built here with
/// pgcm::register_types and the chosen scheduler policy).
class pgcm_runtime {
public:
  /// policy: "sharing" or "stealing"; max_threads 0 = CAF's default.
  pgcm_runtime(const std::string& policy, int max_threads);
  ~pgcm_runtime();
  pgcm_runtime(const pgcm_runtime&) = delete;
  pgcm_runtime& operator=(const pgcm_runtime&) = delete;

  struct impl;
  impl& get() { return *impl_; }
  std::string policy() const;

private:
  std::unique_ptr<impl> impl_;
};

struct pool_settings {
  int min = 1;
  int max = 10;
  int pipeline_depth = 8; // pgcm's default
  int statement_cache = 256;
};

/// facade: N threads on connection_manager::query(); actor: one requester
/// actor with N outstanding; scoped (diagnostic): N threads, each reusing one
/// scoped_actor for request/receive on the manager. actor: single-node
/// queries go to the node's handle ((route_atom, node_atom, id), the actor
/// API's fast path); actor_via_manager: the same requester, queries sent to
/// the manager.
enum class pgcm_api { facade, actor, scoped, actor_via_manager };

/// `sql` on one node (`srv`) with `in_flight` requests outstanding.
contender_ptr make_pgcm_single(pgcm_runtime& rt, const cluster_info& c, const server& srv,
                               std::string sql, int in_flight, pgcm_api api, pool_settings pool);

/// `sql` through the facade on a manager of `servers` (a primary and one
/// standby, servers[1]): routed (`query(route{target::standby}, ...)`, which
/// resolves to servers[1]) or by name (`query(servers[1].name, ...)`).
contender_ptr make_pgcm_routed(pgcm_runtime& rt, const cluster_info& c, std::vector<server> servers,
                               std::string sql, int in_flight, bool routed, pool_settings pool);

/// with_transaction on one node (`srv`) from `threads` threads, the
/// transaction being `update_sql` with $1 = the thread's own row of bench_tx.
contender_ptr make_pgcm_tx(pgcm_runtime& rt, const cluster_info& c, const server& srv,
                           std::string update_sql, int threads, pool_settings pool);

/// query_all(`sql`) over `servers` with `in_flight` fan-outs outstanding.
contender_ptr make_pgcm_all(pgcm_runtime& rt, const cluster_info& c, std::vector<server> servers,
                            std::string sql, int in_flight, pgcm_api api, pool_settings pool);

/// What a new user runs (issue 11's table): `pgcm::connection_manager{}`
/// (its own actor system, default manager_options), nodes `servers` with
/// only host/port/database/user/password set (default pool: max 10),
/// `threads` threads looping on query(servers[0].name, sql) or, when `all`,
/// query_all(sql). Contender name "pgcm-defaults".
contender_ptr make_pgcm_default(pgcm_runtime& rt, const cluster_info& c,
                                std::vector<server> servers, std::string sql, int threads,
                                bool all);

/// A fresh manager; initialize(servers, pool.min = pool.max = per_server);
/// op latency = time until every pool connection is open (the extra value
/// "initialize_ms" = when initialize() returned).
contender_ptr make_pgcm_startup(pgcm_runtime& rt, const cluster_info& c,
                                std::vector<server> servers, int per_server);

/// The scale workload's pgcm side, run in a child process: prints one JSON
/// object on stdout. Returns the exit code.
int scale_child_pgcm(const cluster_info& c, const std::string& policy, int max_threads, int nodes,
                     double seconds, double probe_seconds);

/// Sets pgcm's log level (warn by default: the bench prints its own progress).
void set_pgcm_log_level(const std::string& level);

} // namespace bench
