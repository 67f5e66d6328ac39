#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace pgcm {

/// pgcm's error codes. Between actors they travel inside a `caf::error` of
/// category `pgcm` (see messages/error.hpp); at the blocking facade they are
/// thrown as `pgcm::error`. 0 is reserved by CAF for "no error".
enum class errc : std::uint8_t {
  node_not_found = 1,  ///< no node with that id is managed
  duplicate_node,      ///< a node with that id exists already
  invalid_config,      ///< a manager option or node config field is invalid
  connection_failed,   ///< the node could not be connected or its connection broke
  query_failed,        ///< the server rejected or aborted the statement
  query_timeout,       ///< the deadline passed; the statement was cancelled
  pool_exhausted,      ///< the node's wait queue is full
  shutting_down,       ///< the manager or node is shutting down / being removed
  conversion_failed,   ///< a value could not be converted to the requested type
  column_not_found,    ///< a row has no column of that name or index
  invalid_argument,    ///< a call's arguments are invalid (e.g. bad parameter)
  remote_disconnected, ///< the connection to a remote manager dropped
  protocol_mismatch,   ///< the remote side speaks another protocol version
  internal,            ///< a bug in pgcm; please report
  no_eligible_node,    ///< no node fits a route (the message says why, per node)
  split_brain,         ///< two primaries on one timeline: writes are refused
};

/// Returns the name of the code, e.g. "query_timeout".
std::string to_string(errc x);

/// An error as a value: what `node_result::error` holds.
struct error_info {
  errc code = errc::internal;
  /// Human-readable; names the node where there is one.
  std::string message;
  /// The SQLSTATE the server sent, if any (e.g. "42P01").
  std::optional<std::string> sqlstate;
};

/// What the blocking facade throws.
class error : public std::runtime_error {
public:
  explicit error(error_info info) : std::runtime_error(info.message), info_(std::move(info)) {}
  error(errc code, std::string message, std::optional<std::string> sqlstate = std::nullopt)
      : error(error_info{code, std::move(message), std::move(sqlstate)}) {}

  errc code() const noexcept { return info_.code; }
  const std::optional<std::string>& sqlstate() const noexcept { return info_.sqlstate; }
  const error_info& info() const noexcept { return info_; }

private:
  error_info info_;
};

} // namespace pgcm
