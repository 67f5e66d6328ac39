#pragma once

// Transactions: several statements on one pinned connection of a node
// (connection_manager::with_transaction; actor API: begin_atom on the
// manager, then the session actor). CAF-free; reachable from <pgcm/pgcm.hpp>.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pgcm/param.hpp"
#include "pgcm/result_set.hpp"

namespace pgcm {

/// The transaction's isolation level (BEGIN ISOLATION LEVEL ...).
enum class isolation : std::uint8_t { read_committed, repeatable_read, serializable };

/// "read committed", "repeatable read", "serializable".
std::string to_string(isolation x);

struct transaction_options {
  isolation level = isolation::read_committed;
  bool read_only = false;
  /// Only takes effect with serializable + read_only (PostgreSQL's rule).
  bool deferrable = false;
  /// with_transaction reruns the whole function on SQLSTATE 40001
  /// (serialization failure) or 40P01 (deadlock), up to this many times.
  int retries = 0;
  /// Each attempt as a whole (BEGIN to COMMIT); default: query_timeout.
  std::optional<std::chrono::milliseconds> timeout;
};

namespace detail {
struct transaction_impl;
struct transaction_access;
} // namespace detail

/// The statements of one transaction, run in order on one connection.
/// Valid only inside the function given to connection_manager::with_transaction.
/// A failing statement throws (query_failed with its SQLSTATE); the
/// transaction is then aborted on the server: let the exception out (it is
/// rolled back, and retried when it is a serialization failure or deadlock)
/// or use ROLLBACK TO SAVEPOINT.
class transaction {
public:
  result_set query(const std::string& sql, std::vector<param> params = {});

  /// Like query(), each row mapped with `from_row(const row&, T&)` (ADL).
  template <class T> std::vector<T> query(const std::string& sql, std::vector<param> params = {}) {
    return map_rows<T>(query(sql, std::move(params)));
  }

  /// The node the transaction runs on.
  const std::string& node_id() const;

  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

private:
  friend struct detail::transaction_access;
  explicit transaction(std::shared_ptr<detail::transaction_impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::transaction_impl> impl_;
};

} // namespace pgcm
