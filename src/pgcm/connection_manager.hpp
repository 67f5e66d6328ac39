#pragma once

// The blocking facade: pgcm for code that is not actor-based.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pgcm/error.hpp"
#include "pgcm/param.hpp"
#include "pgcm/remote.hpp"
#include "pgcm/result_set.hpp"
#include "pgcm/transaction.hpp"
#include "pgcm/types.hpp"

namespace caf {
class actor_system;
}

namespace pgcm {

/// One node's share of a typed fan-out: `data` holds the mapped rows.
template <class T> using node_result = basic_node_result<std::vector<T>>;

/// One node's share of an untyped fan-out.
using node_result_set = basic_node_result<result_set>;

namespace detail {
struct subscription_entry;
struct facade_impl;
struct facade_access;
} // namespace detail

/// Keeps an event callback registered; unsubscribes when destroyed. Once
/// `unsubscribe()` (or the destructor) returns, the callback is not running
/// and will not run again (except when called from inside the callback
/// itself, which is allowed).
class subscription {
public:
  subscription() = default;
  subscription(subscription&&) noexcept = default;
  subscription& operator=(subscription&& other) noexcept;
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription();

  void unsubscribe();
  bool active() const;

private:
  friend class connection_manager;
  std::shared_ptr<detail::facade_impl> owner_;
  std::shared_ptr<detail::subscription_entry> entry_;
};

/// How query_stream() runs.
struct stream_options {
  /// Rows per callback (only the last chunk may have fewer); 1 .. 1,000,000.
  std::size_t chunk_rows = 1000;
  /// The deadline of the whole stream, callbacks included; default query_timeout.
  std::optional<milliseconds> timeout;
};

/// Manages PostgreSQL connections across the nodes of a replication cluster.
///
/// Thread-safe: any number of threads may call any method at once (that is
/// how the pools fill); each call blocks only its caller. Errors are thrown
/// as pgcm::error with a pgcm::errc code and a message naming the node.
///
/// Event callbacks run on one dedicated pgcm thread per manager, one at a
/// time, in the order the events happened. A callback may call the manager;
/// an exception it throws is logged and swallowed.
class connection_manager {
public:
  /// Starts an actor system of its own (pgcm's scheduler: pgcm/scheduler.hpp).
  explicit connection_manager(manager_options opts = {});

  /// Runs in an existing actor system, whose config must have seen
  /// pgcm::register_types(cfg).
  connection_manager(caf::actor_system& sys, manager_options opts = {});

  /// Attaches to a manager served by `pgcm serve` (or publish_manager) at
  /// `remote` and offers the same API, events included. `opts` only sets the
  /// client's own waiting bounds (query_timeout, shutdown_timeout). Throws
  /// remote_disconnected when the server cannot be reached, protocol_mismatch
  /// when it speaks another protocol version, invalid_config for bad TLS
  /// files. When the connection drops, pending calls throw
  /// remote_disconnected at once; the next call connects again.
  explicit connection_manager(const remote_endpoint& remote, manager_options opts = {});

  /// Shuts down (see shutdown()).
  ~connection_manager();

  connection_manager(const connection_manager&) = delete;
  connection_manager& operator=(const connection_manager&) = delete;

  /// Validates every node config (throws invalid_config / duplicate_node
  /// naming node and field, before connecting anything), then connects all
  /// nodes in parallel. Returns once each node has connected or failed its
  /// first attempt and has been probed once; a node that is down is reported
  /// unhealthy and retried with backoff, it does not make this throw.
  void initialize(std::vector<std::pair<std::string, node_config>> nodes);

  /// Adds and starts one node like initialize(). Throws duplicate_node.
  void add_node(const std::string& id, node_config cfg);

  /// Removes a node: lets its in-flight queries finish (or fail) within
  /// shutdown_timeout, then closes its connections. Throws node_not_found.
  void remove_node(const std::string& id);

  bool has_node(const std::string& id) const;
  std::optional<node_info> get_node(const std::string& id) const;
  std::vector<node_info> get_nodes() const;
  std::vector<node_info> get_healthy_nodes() const;
  std::optional<health_status> get_health(const std::string& id) const;
  std::optional<pool_stats> get_pool_stats(const std::string& id) const;
  std::vector<pool_stats> get_all_pool_stats() const;

  /// Runs `sql` with `$1..$n` parameters (sent separately, never spliced in)
  /// on one node. `timeout` defaults to the manager's query_timeout; when it
  /// passes, the statement is cancelled on the server and query_timeout thrown.
  result_set query(const std::string& node, const std::string& sql, std::vector<param> params = {},
                   std::optional<milliseconds> timeout = std::nullopt);

  /// Like query(), each row mapped with `from_row(const row&, T&)` (ADL).
  template <class T>
  std::vector<T> query(const std::string& node, const std::string& sql,
                       std::vector<param> params = {},
                       std::optional<milliseconds> timeout = std::nullopt) {
    return map_rows<T>(query(node, sql, std::move(params), timeout));
  }

  /// Runs `sql` on every node in parallel; one entry per node, in the order
  /// the nodes were added. A node failing or timing out yields its own error
  /// entry and never fails or delays the others beyond the timeout.
  /// Runs `sql` on a node chosen by `r` (README, Routing): a standby fresh
  /// enough for the route, the primary, or any. Throws no_eligible_node
  /// (naming, per node, why it was not eligible) or split_brain when none
  /// fits; `result_set::node_id()` names the node that answered.
  result_set query(const route& r, const std::string& sql, std::vector<param> params = {},
                   std::optional<milliseconds> timeout = std::nullopt);

  template <class T>
  std::vector<T> query(const route& r, const std::string& sql, std::vector<param> params = {},
                       std::optional<milliseconds> timeout = std::nullopt) {
    return map_rows<T>(query(r, sql, std::move(params), timeout));
  }

  std::vector<node_result_set> query_all(const std::string& sql, std::vector<param> params = {},
                                         std::optional<milliseconds> timeout = std::nullopt);

  template <class T>
  std::vector<node_result<T>> query_all(const std::string& sql, std::vector<param> params = {},
                                        std::optional<milliseconds> timeout = std::nullopt) {
    return map_results<T>(query_all(sql, std::move(params), timeout));
  }

  /// Like query_all(), on the nodes whose health is `healthy` only.
  std::vector<node_result_set> query_healthy(const std::string& sql, std::vector<param> params = {},
                                             std::optional<milliseconds> timeout = std::nullopt);

  template <class T>
  std::vector<node_result<T>> query_healthy(const std::string& sql, std::vector<param> params = {},
                                            std::optional<milliseconds> timeout = std::nullopt) {
    return map_results<T>(query_healthy(sql, std::move(params), timeout));
  }

  /// Runs `sql` on `node` and calls `on_rows` with consecutive chunks of its
  /// rows (each a result_set of `opts.chunk_rows` rows, only the last may have
  /// fewer; the last one also carries command() and affected_rows(); a
  /// statement without rows gives one empty chunk with its columns and
  /// command tag) as they arrive; returns the number of rows. Runs on a connection opened for
  /// the stream and closed after it, in libpq's single-row mode: at most about
  /// two chunks are held at a time, and a slow callback slows the reads from
  /// the server (TCP back pressure) instead of buffering the result.
  /// An exception from `on_rows` cancels the statement on the server and is
  /// rethrown. Throws query_timeout when the deadline passes mid-stream (the
  /// statement is cancelled), connection_failed when the node is lost, and
  /// pool_exhausted when the node runs pool.max streams already.
  std::uint64_t query_stream(const std::string& node, const std::string& sql,
                             std::vector<param> params,
                             const std::function<void(const result_set& rows)>& on_rows,
                             stream_options opts = {});

  // -- transactions -----------------------------------------------------------

  /// Runs `fn` in one transaction on one connection of `node` (pinned: no
  /// other request uses it meanwhile). Commits when `fn` returns, rolls back
  /// when it throws (and rethrows). Returns a WAL position at or after the
  /// commit record (0 when opts.read_only). The deadline (opts.timeout,
  /// default query_timeout) covers each attempt whole: when it passes, the
  /// running statement is cancelled on the server, the transaction rolled
  /// back and query_timeout thrown. With opts.retries > 0, a serialization
  /// failure (40001) or deadlock (40P01) rolls back and runs `fn` again (up
  /// to `retries` times, jittered backoff); nothing else is retried. A
  /// connection lost throws connection_failed (never retried); lost during
  /// COMMIT, its message says the outcome is unknown.
  lsn with_transaction(const std::string& node, const std::function<void(transaction&)>& fn,
                       transaction_options opts = {});

  /// Like with_transaction(node, ...), on a node chosen by `r` (once per attempt).
  lsn with_transaction(const route& r, const std::function<void(transaction&)>& fn,
                       transaction_options opts = {});

  /// Calls `callback` for every event of type `type` from now on (may be
  /// called before initialize(), so no early event is missed).
  [[nodiscard]] subscription on(event type, std::function<void(const node_event&)> callback);

  /// Calls `callback` for every event.
  [[nodiscard]] subscription on_any(std::function<void(const node_event&)> callback);

  /// New requests answer shutting_down; in-flight work may finish within
  /// shutdown_timeout, the rest is cancelled and answered; every connection
  /// is closed. Returns within shutdown_timeout plus a small margin even if
  /// every node is down or hung. Calling it twice is harmless.
  void shutdown();

  /// The actor system the manager runs in.
  caf::actor_system& system();

  const manager_options& options() const;

  /// True when attached to a remote manager.
  bool is_remote() const;

private:
  friend struct detail::facade_access;

  subscription subscribe(std::optional<event> type,
                         std::function<void(const node_event&)> callback);

  template <class T>
  static std::vector<node_result<T>> map_results(std::vector<node_result_set> in) {
    std::vector<node_result<T>> out;
    out.reserve(in.size());
    for (auto& r : in) {
      node_result<T> x;
      x.node_id = std::move(r.node_id);
      x.success = r.success;
      x.error = std::move(r.error);
      if (r.success) {
        try {
          x.data = map_rows<T>(r.data);
        } catch (const error& e) {
          x.success = false;
          x.error = e.info();
        }
      }
      out.push_back(std::move(x));
    }
    return out;
  }

  std::shared_ptr<detail::facade_impl> impl_;
};

} // namespace pgcm
