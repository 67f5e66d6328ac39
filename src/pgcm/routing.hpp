#pragma once

// Replication-aware routing: where a query may go (`target`), a WAL position
// (`lsn`, the read-your-writes token) and a route (target plus freshness
// bounds). CAF-free; reachable from <pgcm/pgcm.hpp>.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace pgcm {

/// Which nodes a routed query may run on.
enum class target : std::uint8_t {
  primary,        ///< the node that is primary now (never a node last seen as standby)
  standby,        ///< a standby fresh enough for the route; none: no_eligible_node
  prefer_standby, ///< a standby fresh enough, else the primary
  any,            ///< every eligible node, the primary included
};

std::string to_string(target x);

/// Parses "primary", "standby", "prefer-standby" (or "prefer_standby"), "any";
/// nullopt for anything else.
std::optional<target> parse_target(const std::string& text);

/// A WAL position; text form "16/B374D848" (two hex numbers, high and low 32 bits).
struct lsn {
  std::uint64_t value = 0;

  std::string to_string() const;
  /// Parses the text form; throws pgcm::error{invalid_argument} naming the text.
  static lsn parse(const std::string& text);
};

inline bool operator==(lsn x, lsn y) {
  return x.value == y.value;
}
inline bool operator!=(lsn x, lsn y) {
  return x.value != y.value;
}
inline bool operator<(lsn x, lsn y) {
  return x.value < y.value;
}

/// Where a query may run and how fresh the data there must be.
struct route {
  target to = target::any;
  /// Standbys further behind the primary than this many bytes are not used.
  std::optional<std::int64_t> max_lag_bytes;
  /// The same in time.
  std::optional<std::chrono::milliseconds> max_lag;
  /// Read-your-writes: only a node that has replayed this position (or the primary).
  std::optional<lsn> after;
  /// The answer carries result_set::commit_lsn().
  bool want_lsn = false;
};

} // namespace pgcm
