#pragma once

// A non-blocking libpq connection in pipeline mode. Not an actor and not
// thread-safe: one connection_worker owns one pq_connection and drives it
// from socket readiness reported by the reactor. No call here blocks.

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "pgcm/param.hpp"
#include "pgcm/result_set.hpp"
#include "pgcm/types.hpp"

struct pg_conn;
struct pg_cancel;
struct pg_result;

namespace pgcm::detail {

/// libpq keyword/value connection parameters of one node (owning storage).
/// Built from a node_config with keyword arrays, never by concatenating a
/// conninfo string. Holds the password: never log it.
struct conn_params {
  std::vector<std::string> keys;
  std::vector<std::string> values;

  /// `hostaddr` may be empty (no resolved address; libpq resolves `host`).
  static conn_params from(const node_config& cfg, const std::string& hostaddr,
                          std::chrono::milliseconds connect_timeout);

  /// Sets or replaces one keyword.
  void set(const std::string& key, std::string value);
};

/// Whether `sql` starts (after white space and comments) with BEGIN or START,
/// i.e. may open a transaction block: such a statement is never pipelined
/// behind or ahead of others.
bool opens_transaction(const std::string& sql);

/// A libpq message without its trailing white space and its "ERROR:  " /
/// "FATAL:  " / "PANIC:  " prefix.
std::string trimmed_message(const char* msg);

/// Why `sql` may not run through query() (a pooled, autocommit connection):
/// it opens a transaction block (BEGIN, START TRANSACTION) or ends one
/// (COMMIT, ROLLBACK, END, ABORT; not ROLLBACK TO SAVEPOINT). Empty when it
/// may. Checked once where a request enters (facade, manager), not per hop.
std::string transaction_statement_problem(const std::string& sql);

/// What became of one request.
struct pq_outcome {
  bool ok = false;
  result_set result;
  std::string error;
  std::string sqlstate;
  /// The server ended the session (severity FATAL/PANIC) or the connection was lost.
  bool fatal = false;
  /// A cached prepared statement was missing or stale: the statement did not
  /// run and may safely be sent again.
  bool stale_statement = false;
};

class pq_connection {
public:
  enum class connect_status { reading, writing, ready, failed };

  explicit pq_connection(int statement_cache) : cache_capacity_(statement_cache) {}
  ~pq_connection() { close(); }
  pq_connection(const pq_connection&) = delete;
  pq_connection& operator=(const pq_connection&) = delete;

  /// PQconnectStartParams. False (and `err`) on immediate failure.
  bool start(const conn_params& params, std::string& err);

  /// One PQconnectPoll step; on `ready` the connection is in non-blocking
  /// pipeline mode.
  connect_status poll_connect(std::string& err);

  /// The current socket (changes while connecting), -1 if none.
  int socket() const;

  /// Queues `sql` with `params` and a sync point. Prepares the statement on
  /// first use when the statement cache has room.
  bool send(const std::string& sql, const std::vector<param>& params, std::string& err);

  /// Sends buffered output: 0 all sent, 1 more to send (wait for writable), -1 failed.
  int flush();

  /// Reads what the socket has. False when the connection broke.
  bool consume(std::string& err);

  /// Appends the outcome of every request whose sync point arrived, in order.
  /// Returns false when the connection broke; the caller then fails the
  /// requests still pending.
  bool read_results(std::vector<pq_outcome>& done);

  /// Requests sent and not yet answered.
  std::size_t pending() const { return pending_.size(); }

  /// True when nothing is pending and the session is idle (no open
  /// transaction). Only meaningful when pending() == 0.
  bool idle_in_session() const;

  /// True once the server said it ends the session (FATAL with SQLSTATE
  /// 57P0x, e.g. pg_terminate_backend or shutdown), as a notice while idle or
  /// as a request's error. Requests sent after that were never executed.
  bool server_ended_session() const { return server_ended_session_; }

  /// A cancel handle for the running statement (owned by the caller), or null.
  ::pg_cancel* make_cancel() const;

  /// libpq's last error message, trimmed.
  std::string last_error() const;

  /// Closes the connection (PQfinish sends Terminate without blocking).
  void close();

  int backend_pid() const;

  /// The libpq connection itself, for a stream worker that drives it outside
  /// pipeline mode after connecting (actors/stream_worker.cpp). Null if closed.
  ::pg_conn* native() const { return conn_; }

private:
  struct pending_request {
    std::string prepared_sql; // non-empty: this request prepares the statement first
    std::string statement;    // name used, empty for the unnamed statement
    bool prepare_done = false;
    bool got_null = false;
    pq_outcome outcome;
  };

  void record_error(pending_request& p, const ::pg_result* r);
  void forget_statement(const std::string& sql);

  ::pg_conn* conn_ = nullptr;
  int cache_capacity_;
  std::uint64_t next_statement_ = 0;
  std::unordered_map<std::string, std::string> statements_;
  std::deque<pending_request> pending_;
  bool server_ended_session_ = false;
};

} // namespace pgcm::detail
