#pragma once

// The health rules of one node, as a plain class (unit-tested without actors).
//
// - Before the first probe the status is `unknown`.
// - A successful probe marks the node healthy at once (also the first one)
//   and resets the failure count: one good answer proves the node serves.
// - From `unknown`, the first failed probe marks the node unhealthy at once:
//   a node that is down at start has no good history to give it credit.
// - From `healthy`, it takes `unhealthy_threshold` consecutive failures to
//   turn unhealthy, so one lost packet does not flap the node.

#include <chrono>
#include <string>

#include "pgcm/types.hpp"

namespace pgcm::detail {

class health_tracker {
public:
  explicit health_tracker(int unhealthy_threshold) : threshold_(unhealthy_threshold) {}

  /// Returns true when status or role changed (worth a node_health event).
  bool on_success(std::chrono::microseconds latency, node_role role,
                  std::chrono::system_clock::time_point now) {
    auto before = status_;
    status_.status = health_state::healthy;
    status_.latency = latency;
    status_.consecutive_failures = 0;
    status_.last_error.reset();
    status_.last_check = now;
    status_.role = role;
    return before.status != status_.status || before.role != status_.role;
  }

  /// Returns true when the status changed.
  bool on_failure(std::string error, std::chrono::system_clock::time_point now) {
    auto before = status_.status;
    ++status_.consecutive_failures;
    status_.last_error = std::move(error);
    status_.last_check = now;
    if (status_.status == health_state::unknown || status_.consecutive_failures >= threshold_)
      status_.status = health_state::unhealthy;
    return before != status_.status;
  }

  const health_status& status() const { return status_; }

private:
  int threshold_;
  health_status status_;
};

} // namespace pgcm::detail
