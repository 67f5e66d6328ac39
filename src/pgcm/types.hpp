#pragma once

// pgcm's public value types: options, node configuration, health, pool
// statistics and events. CAF-free on purpose: the blocking facade's users
// include only this and the facade.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pgcm/error.hpp"
#include "pgcm/routing.hpp"

namespace pgcm {

using std::chrono::microseconds;
using std::chrono::milliseconds;

/// Manager-wide options (the spec's "Configuration Reference").
struct manager_options {
  /// How often each node's health probe runs.
  milliseconds health_check_interval{5000};
  /// Consecutive failed probes that turn a healthy node unhealthy.
  int unhealthy_threshold = 3;
  /// Upper bound for `shutdown()` (and `remove_node`) to finish in-flight work.
  milliseconds shutdown_timeout{10000};
  /// Default per-query deadline, used when a call gives none.
  milliseconds query_timeout{30000};
  /// Deadline of one health probe (connect + query). 0 = the interval, capped at 5 s.
  milliseconds health_check_timeout{0};
  /// Deadline for opening one connection (TCP, TLS, authentication).
  milliseconds connect_timeout{5000};
  /// First reconnect delay after a failed connection attempt; doubles per
  /// failure (with jitter) up to `reconnect_backoff_max`.
  milliseconds reconnect_backoff_initial{100};
  milliseconds reconnect_backoff_max{10000};
  /// Consecutive successful probes that turn an unhealthy node healthy again
  /// (a node never probed before turns healthy on its first success).
  int healthy_threshold = 1;
  /// Probe interval while a node is unhealthy.
  milliseconds unhealthy_check_interval{1000};
  /// How long a `target::primary` request waits for a primary to appear
  /// (during a failover) before `no_eligible_node`.
  milliseconds primary_wait{0};
  /// Let pgcm's core actors run on its reactor thread and on a facade
  /// caller's thread, and a caller wait on its query's socket itself
  /// (docs/threading.md). false: they run only on the actor system's
  /// scheduler threads. The environment variable PGCM_INLINE=0 turns it off
  /// whatever this says; PGCM_INLINE=1 (or unset) leaves this value.
  bool inline_execution = true;

  /// `inline_execution`, unless PGCM_INLINE=0.
  bool effective_inline_execution() const;

  /// The probe deadline actually used.
  milliseconds effective_health_check_timeout() const {
    if (health_check_timeout.count() > 0) return health_check_timeout;
    return std::min(health_check_interval, milliseconds{5000});
  }
};

/// TLS settings of one node.
struct ssl_config {
  bool enabled = false;
  /// true: `sslmode=verify-full` with `sslrootcert=ca` (CA required);
  /// false: `sslmode=require` (encrypted, server not authenticated).
  bool reject_unauthorized = true;
  /// Path of the CA certificate file (PEM).
  std::string ca;
};

/// Pool settings of one node.
struct pool_config {
  /// Connections opened at start and kept open.
  int min = 1;
  /// Upper bound of open connections; the pool grows on demand up to it.
  int max = 10;
  /// Requests sent ahead on one connection (libpq pipeline mode) before a
  /// request has to wait. 1 = classic one-query-per-connection pooling.
  int pipeline_depth = 8;
  /// Requests that may wait for a connection; one more answers `pool_exhausted`.
  int max_waiting = 10000;
  /// SQL texts prepared per connection (repeated SQL runs as a prepared
  /// statement); 0 disables preparing.
  int statement_cache = 256;
};

/// Connection settings of one node (the spec's "Node Configuration Reference").
struct node_config {
  std::string host;
  std::uint16_t port = 5432;
  std::string database;
  std::string user;
  /// Not required: libpq's PGPASSWORD / passfile apply when absent.
  /// Never logged, never returned by `get_node()`.
  std::optional<std::string> password;
  ssl_config ssl;
  pool_config pool;
  /// Shown in `pg_stat_activity.application_name`.
  std::string application_name = "pgcm";
};

/// Health state of a node.
enum class health_state : std::uint8_t {
  unknown,   ///< no probe has finished yet
  healthy,   ///< the last probe succeeded
  unhealthy, ///< `unhealthy_threshold` probes failed in a row (or the first one did)
};

/// What the node is in the replication cluster, as the probe saw it.
enum class node_role : std::uint8_t {
  unknown, ///< not probed successfully yet
  primary, ///< `pg_is_in_recovery()` is false
  standby, ///< `pg_is_in_recovery()` is true
};

std::string to_string(health_state x);
std::string to_string(node_role x);

/// Health of one node as its probe sees it.
struct health_status {
  health_state status = health_state::unknown;
  /// Round trip of the last successful probe query.
  microseconds latency{0};
  int consecutive_failures = 0;
  std::optional<std::string> last_error;
  /// When the last probe finished (system clock); epoch if never.
  std::chrono::system_clock::time_point last_check{};
  node_role role = node_role::unknown;
  /// Primary: its current timeline; standby: the one it receives and replays. 0 = unknown.
  std::uint32_t timeline = 0;
  /// The cluster the node belongs to (`pg_control_system()`); 0 = unknown.
  std::uint64_t system_identifier = 0;
  /// Primary: its current WAL position; standby: the last one it replayed.
  std::optional<lsn> wal_lsn;
  /// Standby: the last WAL position it received.
  std::optional<lsn> receive_lsn;
  /// Standby: how far it is behind the primary (0 when caught up; README, Routing).
  std::optional<std::int64_t> lag_bytes;
  std::optional<milliseconds> lag;
  /// Why the node is kept out of routing: split brain, another cluster's system identifier.
  std::optional<std::string> conflict;
};

bool operator==(const health_status& x, const health_status& y);

/// Counters and gauges of one node's pool. Gauges: what is now; counters:
/// totals since the node was added.
#define PGCM_POOL_GAUGES(X)                                                                        \
  X(total_connections)  /* open or opening */                                                      \
  X(idle_connections)   /* open, no request in flight */                                           \
  X(waiting_requests)   /* not executing yet: queued or pipelined */                               \
  X(in_flight_requests) /* sent to a connection, not answered yet */
#define PGCM_POOL_COUNTERS(X)                                                                      \
  X(connections_opened)    /* connection attempts that succeeded */                                \
  X(connect_failures)      /* connection attempts that failed */                                   \
  X(connections_discarded) /* closed because broken, poisoned or cancelled */                      \
  X(queries_ok)                                                                                    \
  X(queries_failed)                                                                                \
  X(queries_timed_out)                                                                             \
  X(queries_retried)       /* re-sent after the server terminated an idle connection */            \
  X(requests_rejected)     /* pool_exhausted answers */                                            \
  X(query_duration_count)  /* answers a connection gave (ok, failed, timed out) */                 \
  X(query_duration_sum_us) /* their durations summed, microseconds */
/// Query-duration histogram of one node: for each bucket, the answers
/// counted in query_duration_count that took at most its bound (cumulative,
/// as Prometheus' `le` buckets; the +Inf bucket is query_duration_count).
/// Duration: from the call (the job's creation) to the answer.
#define PGCM_QUERY_DURATION_BUCKETS(X)                                                             \
  X(query_duration_le_500us, 500)                                                                  \
  X(query_duration_le_1ms, 1000)                                                                   \
  X(query_duration_le_2500us, 2500)                                                                \
  X(query_duration_le_5ms, 5000)                                                                   \
  X(query_duration_le_10ms, 10000)                                                                 \
  X(query_duration_le_25ms, 25000)                                                                 \
  X(query_duration_le_50ms, 50000)                                                                 \
  X(query_duration_le_100ms, 100000)                                                               \
  X(query_duration_le_250ms, 250000)                                                               \
  X(query_duration_le_500ms, 500000)                                                               \
  X(query_duration_le_1s, 1000000)                                                                 \
  X(query_duration_le_2500ms, 2500000)                                                             \
  X(query_duration_le_5s, 5000000)                                                                 \
  X(query_duration_le_10s, 10000000)

struct pool_stats {
  std::string node_id;
#define PGCM_X(name) std::int64_t name = 0;
  PGCM_POOL_GAUGES(PGCM_X)
  PGCM_POOL_COUNTERS(PGCM_X)
#undef PGCM_X
#define PGCM_X(name, bound_us) std::int64_t name = 0;
  PGCM_QUERY_DURATION_BUCKETS(PGCM_X)
#undef PGCM_X
};

bool operator==(const pool_stats& x, const pool_stats& y);

/// A snapshot of one managed node. `config.password` is always empty here.
struct node_info {
  std::string id;
  node_config config;
  health_status health;
  pool_stats pool;
};

/// Lifecycle events (the spec's "Events Reference").
enum class event : std::uint8_t {
  node_connected,    ///< the node has its first usable pool connection
  node_disconnected, ///< the node lost its last pool connection (`error` says why)
  node_health,       ///< health status or role changed (`health` set)
  node_added,        ///< `add_node` / `initialize` added the node
  node_removed,      ///< the node was removed (or the manager shut down)
  pool_stats,        ///< pool counts changed (`stats` set); a few per second at most
  node_role, ///< role, timeline or conflict changed (`health` set); also the first known role
};

std::string to_string(event x);

struct node_event {
  event type = event::node_added;
  std::string node_id;
  std::optional<health_status> health;
  std::optional<struct pool_stats> stats;
  std::optional<error_info> error;
};

/// One node's share of a fan-out (`query_all`, `query_healthy`).
template <class Data> struct basic_node_result {
  std::string node_id;
  bool success = false;
  Data data{};
  std::optional<error_info> error;
};

/// Returns a config copy without its password (for snapshots and logs).
node_config redacted(node_config cfg);

/// Returns a one-line description of a node config for logs; never contains
/// the password.
std::string describe(const node_config& cfg);

/// Validates a node config. Returns the problem, naming node and field, or
/// nullopt when valid. Also checks that `ssl.ca` is a readable file.
std::optional<error_info> validate(const std::string& node_id, const node_config& cfg);

/// Validates manager options; returns the problem naming the field.
std::optional<error_info> validate(const manager_options& opts);

} // namespace pgcm
