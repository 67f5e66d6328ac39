#pragma once

// connection_worker: one libpq connection, driven without blocking.
//
// Owns: one pq_connection (non-blocking, pipeline mode, prepared-statement
// cache) and its registration with the reactor.
// Answers: (execute_atom, query_job) -> result_set, in the order received;
// up to the supervisor's pipeline depth are on the wire at once.
// Reports: a worker_report to its owner on every state change and, for the
// counts by outcome, after answering requests (with worker_counters: only
// while the owner has requests waiting, else at most every 250 ms).
//
//      spawn
//        |  PQconnectStartParams
//        v
//   [connecting] --timeout/fail--> [failed] (quits)
//        | ok
//        v
//     [ready] --server gone / broken--> [failed] (quits, pending answered)
//        | open transaction after a request, drain, or unrecoverable cancel
//        v
//    [retiring] --in-flight answered--> [closed] (quits)
//
// (Drain: in-flight requests get the grace period, then [closed]. The states
// and their legal moves: src/worker_phase.hpp.)
//
// Guarantees: every request gets exactly one answer: its result, its error,
// query_timeout at its deadline (the statement is then cancelled on the
// server with PQcancel on a detached thread), shutting_down when drained
// past the grace period, or connection_failed. A request that certainly did
// not run (server terminated the session, stale prepared statement, hit by a
// cancel aimed at another request) is handed back to `retry_to` once.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "pgcm/messages/internal_protocol.hpp"

namespace pgcm::detail {
class reactor;
struct conn_params;
struct lease_pool;
struct lease_slot;
} // namespace pgcm::detail

namespace pgcm {

/// What a worker shares with its supervisor so that answering a request
/// needs no message to the supervisor (one cross-thread hop less per query):
/// the supervisor's in-flight count for the worker is what it sent minus
/// `answered`. Reports (with the counts by outcome, for the pool stats) are
/// then sent on state changes, while the supervisor has requests waiting
/// (`report_answers`), and otherwise at most every 250 ms.
struct worker_counters {
  std::atomic<std::int64_t> answered{0};
  std::atomic<bool> report_answers{false};
  /// When the statement now at the head of the worker's pipeline started
  /// (steady_now_ns: the one before it was answered), so that the supervisor
  /// never pipelines behind a long-running statement (pool_policy.hpp).
  /// Stored before `answered` grows.
  std::atomic<std::int64_t> head_since_ns{0};
  /// 1 while a facade caller holds the worker's connection (src/lease.hpp):
  /// in flight for the supervisor, with no message.
  std::atomic<std::int64_t> leased{0};
  /// The worker's lease slot (owned by the worker): the supervisor reserves
  /// a parked connection for a request it routes there (no lessee takes it).
  std::weak_ptr<detail::lease_slot> lease;
  /// Set by the supervisor while a transaction session holds the
  /// connection pinned: the worker does not park it for leasing.
  std::atomic<bool> pinned{false};
};

struct worker_config {
  std::string node_id;
  std::uint32_t worker_id = 0;
  std::shared_ptr<const detail::conn_params> params;
  std::shared_ptr<detail::reactor> io;
  std::chrono::milliseconds connect_timeout{5000};
  /// How long a cancelled statement may take to stop before the connection
  /// is dropped instead.
  std::chrono::milliseconds cancel_grace{2000};
  int statement_cache = 256;
  /// Who takes requests handed back for a retry (the supervisor). May be
  /// invalid (no retries), e.g. for the health probe's connection.
  node_query_actor retry_to;
  /// May be null: then every batch of answers is reported.
  std::shared_ptr<worker_counters> counters;
  /// May be null: then the connection is never leased. Else, while idle and
  /// the pool is in use, the worker parks its connection there (lease.hpp).
  std::shared_ptr<detail::lease_pool> leases;
  /// With `leases`: the connection's slot (made by the supervisor).
  std::shared_ptr<detail::lease_slot> slot;
};

connection_worker_actor spawn_connection_worker(caf::actor_system& sys, worker_owner_actor owner,
                                                worker_config cfg);

/// The steady clock in the nanoseconds that query_job::deadline_ns uses.
std::int64_t steady_now_ns();

/// A first-try job for `sql`, due `timeout` from now.
query_job make_query_job(std::string sql, std::vector<param> params, caf::timespan timeout);

} // namespace pgcm
