#pragma once

// pgcm's internal message protocol: what a manager, its node supervisors,
// connection workers and health probes exchange. Not installed: applications
// use the public protocol (messages/protocol.hpp) only.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "pgcm/messages/protocol.hpp"

namespace pgcm {

/// One query on its way to a connection. The deadline is absolute, on the
/// steady clock (nanoseconds since its epoch), so time spent waiting in a
/// queue counts against it.
struct query_job {
  std::string sql;
  std::vector<param> params;
  std::int64_t deadline_ns = 0;
  /// The timeout the deadline came from (for messages).
  std::int64_t timeout_ms = 0;
  /// 0 for the first try; a job is retried at most once, and only when it
  /// certainly did not run (see connection_worker).
  std::uint8_t attempt = 0;
  /// When the call was made (steady_now_ns), for the query-duration histogram.
  std::int64_t start_ns = 0;
  /// Transactions: 0 an ordinary request; tx_inside: a statement of a
  /// transaction session on its pinned connection (may leave a transaction
  /// open); tx_end: the session's COMMIT / ROLLBACK and what follows them
  /// (the connection must be idle after). Session statements are never
  /// handed back for a retry: another connection is another transaction.
  std::uint8_t tx = 0;
};

constexpr std::uint8_t tx_inside = 1;
constexpr std::uint8_t tx_end = 2;

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, query_job& x) {
  return f(caf::meta::type_name("pgcm::query_job"), x.sql, x.params, x.deadline_ns, x.timeout_ms,
           x.attempt, x.start_ns, x.tx);
}

/// What a health probe reports after each probe: with `ok`, the node's
/// replication facts from the same statement (0 = unknown / NULL).
struct probe_result {
  bool ok = false;
  node_role role = node_role::unknown;
  std::int64_t latency_us = 0;
  std::string error;
  std::uint32_t timeline = 0;
  /// Asked once per probe connection; 0 on the probes after.
  std::uint64_t system_identifier = 0;
  /// Primary: current WAL position; standby: last replayed.
  std::uint64_t wal_lsn = 0;
  std::uint64_t receive_lsn = 0;
  /// Standby: commit time of the last replayed transaction, microseconds since the epoch.
  std::int64_t last_replay_us = 0;
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, probe_result& x) {
  return f(caf::meta::type_name("pgcm::probe_result"), x.ok, x.role, x.latency_us, x.error,
           x.timeline, x.system_identifier, x.wal_lsn, x.receive_lsn, x.last_replay_us);
}

/// What a node supervisor tells the manager after each probe: the node's
/// health (with the probe's facts), whether status or role changed, and
/// the probe itself (for lag and conflicts).
struct probe_report {
  health_status health;
  bool changed = false;
  probe_result probe;
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, probe_report& x) {
  return f(caf::meta::type_name("pgcm::probe_report"), x.health, x.changed, x.probe);
}

/// What takes a query_job: a node supervisor (also where workers hand
/// requests back for a retry).
using node_query_actor = caf::typed_actor<caf::replies_to<query_atom, query_job>::with<result_set>>;

/// The manager's whole interface: the public one plus what its node
/// supervisors send it, and `route_atom`: a node's supervisor, so that a
/// local facade sends queries straight to it (one hop less than through the
/// manager; local only, never published).
using manager_actor = manager_api_actor::extend<
    caf::replies_to<route_atom, std::string>::with<node_query_actor>,
    caf::reacts_to<publish_atom, node_event>, caf::reacts_to<probe_atom, std::string, probe_report>,
    caf::reacts_to<failover_atom, std::string>, caf::reacts_to<tick_atom, std::uint64_t>>;

// -- Row streaming (issue 12, part S) ------------------------------------------

/// A stream on its way to a node supervisor (and its stream worker). The
/// deadline is absolute (steady_now_ns), like query_job's.
struct stream_job {
  std::string sql;
  std::vector<param> params;
  stream_request spec;
  stream_sink_actor sink;
  std::int64_t deadline_ns = 0;
  std::int64_t timeout_ms = 0;
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, stream_job& x) {
  return f(caf::meta::type_name("pgcm::stream_job"), x.sql, x.params, x.spec, x.sink, x.deadline_ns,
           x.timeout_ms);
}

/// Runs one stream on a connection of its own (actors/stream_worker.hpp).
using stream_worker_actor = stream_control_actor::extend<
    caf::replies_to<stream_atom, stream_job>::with<stream_control_actor>,
    caf::reacts_to<io_atom, std::uint32_t>, caf::reacts_to<tick_atom, std::uint64_t>,
    caf::reacts_to<drain_atom, caf::timespan>>;

/// Lifecycle of one connection worker (one libpq connection).
enum class worker_state : std::uint8_t {
  connecting, ///< opening the connection (TCP, TLS, auth)
  ready,      ///< open; takes requests
  retiring,   ///< takes no new requests, closes once the in-flight ones are answered
  closed,     ///< connection closed cleanly; the worker is gone
  failed,     ///< connection broke or could not be opened (`error` says why)
};

/// What a worker tells its owner: its state, and how many requests it
/// answered since its last report, by outcome.
struct worker_report {
  std::uint32_t worker_id = 0;
  worker_state state = worker_state::connecting;
  std::int32_t ok = 0;
  std::int32_t failed = 0;
  std::int32_t timed_out = 0;
  /// Requests handed back to the owner to be retried on another connection.
  std::int32_t retried = 0;
  /// Answers given since the last report, for the query-duration histogram:
  /// how many, their durations summed, and per bucket how many fell into it
  /// (not cumulative here: each answer counts in one bucket, or none above 10 s).
  std::int32_t answers_timed = 0;
  std::int64_t answers_duration_us = 0;
#define PGCM_X(name, bound_us) std::int32_t name = 0;
  PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
  std::string error;
  /// Signs that the node may no longer be the primary, since the last
  /// report: statements answered 25006 (read-only transaction) and sessions
  /// the server ended (57P01/57P02). Reported at once.
  std::int32_t failover_signs = 0;

  /// Whether it counts any answer, retry or sign.
  bool has_counts() const {
    return ok + failed + timed_out + retried + answers_timed + failover_signs > 0;
  }
  /// Adds `r`'s counts (not its worker, state or error).
  void add_counts(const worker_report& r) {
    ok += r.ok;
    failed += r.failed;
    timed_out += r.timed_out;
    retried += r.retried;
    answers_timed += r.answers_timed;
    answers_duration_us += r.answers_duration_us;
#define PGCM_X(name, bound_us) name += r.name;
    PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
    failover_signs += r.failover_signs;
  }
};

template <class Inspector> typename Inspector::result_type inspect(Inspector& f, worker_report& x) {
#define PGCM_X(name, bound_us) , x.name
  return f(caf::meta::type_name("pgcm::worker_report"), x.worker_id, x.state, x.ok, x.failed,
           x.timed_out, x.retried, x.answers_timed,
           x.answers_duration_us PGCM_QUERY_DURATION_BUCKETS(PGCM_X), x.error, x.failover_signs);
#undef PGCM_X
}

/// Whoever owns connection workers (node supervisor, health probe).
using worker_owner_actor = caf::typed_actor<caf::reacts_to<report_atom, worker_report>>;

/// One libpq connection.
using connection_worker_actor =
    caf::typed_actor<caf::replies_to<execute_atom, query_job>::with<result_set>,
                     caf::reacts_to<io_atom, std::uint32_t>,
                     caf::reacts_to<tick_atom, std::uint64_t>,
                     caf::reacts_to<drain_atom, caf::timespan>,
                     caf::reacts_to<lease_atom, std::int32_t, std::string>>;

/// One node: its pool of workers and its health probe.
using node_supervisor_actor = caf::typed_actor<
    caf::replies_to<query_atom, query_job>::with<result_set>,
    // the public node handle (node_api_actor)
    caf::replies_to<query_atom, std::string, std::vector<param>, caf::timespan>::with<result_set>,
    caf::replies_to<start_atom>::with<ok_atom>,
    caf::replies_to<stop_atom, caf::timespan>::with<ok_atom>,
    caf::replies_to<caf::get_atom>::with<node_info>, caf::reacts_to<report_atom, worker_report>,
    caf::reacts_to<probe_atom, probe_result>, caf::reacts_to<probe_atom>,
    caf::reacts_to<resolved_atom, std::uint64_t, std::string, std::string>,
    caf::reacts_to<tick_atom, std::uint64_t>,
    caf::replies_to<stream_atom, stream_job>::with<stream_control_actor>,
    caf::reacts_to<lease_atom, std::int32_t, std::string>,
    // transactions: (pin_atom, job) answers an idle connection pinned
    // for one session until (unpin_atom, it); the job carries only
    // the deadline (queued like a request until then).
    caf::replies_to<pin_atom, query_job>::with<connection_worker_actor>,
    caf::reacts_to<unpin_atom, connection_worker_actor>>;

/// Probes one node's health on its own connection.
/// `(probe_atom, interval)`: probe every `interval` from now on (the
/// supervisor switches to manager_options::unhealthy_check_interval while its
/// node is unhealthy). `(probe_atom)`: probe now (unless a probe runs),
/// then every interval from then on.
using health_probe_actor =
    caf::typed_actor<caf::reacts_to<report_atom, worker_report>,
                     caf::reacts_to<tick_atom, std::uint64_t>,
                     caf::reacts_to<probe_atom, caf::timespan>, caf::reacts_to<probe_atom>>;

} // namespace pgcm
