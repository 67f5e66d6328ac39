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
// - From `unhealthy`, it takes `healthy_threshold` consecutive successes to
//   turn healthy again (default 1), so a flapping node does not take traffic
//   on its first good answer.
// - Each successful probe also records the node's replication facts
//   (timeline, system identifier, WAL positions); a fact the probe did not
//   ask (0 / unknown) keeps its last known value.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "pgcm/types.hpp"

namespace pgcm::detail {

class health_tracker {
public:
  explicit health_tracker(int unhealthy_threshold, int healthy_threshold = 1)
      : threshold_(unhealthy_threshold), healthy_threshold_(healthy_threshold) {}

  /// Returns true when status or role changed (worth a node_health event).
  bool on_success(std::chrono::microseconds latency, node_role role,
                  std::chrono::system_clock::time_point now) {
    auto before = status_;
    ++successes_;
    status_.latency = latency;
    status_.consecutive_failures = 0;
    status_.last_check = now;
    status_.role = role;
    if (status_.status != health_state::unhealthy || successes_ >= healthy_threshold_) {
      status_.status = health_state::healthy;
      status_.last_error.reset();
    }
    return before.status != status_.status || before.role != status_.role;
  }

  /// Records what a successful probe saw of replication (0 / nullopt: not
  /// asked, the last known value stays). Returns true when the timeline changed.
  bool on_facts(std::uint32_t timeline, std::uint64_t system_identifier, std::optional<lsn> wal,
                std::optional<lsn> received) {
    auto before = status_.timeline;
    if (timeline != 0) status_.timeline = timeline;
    if (system_identifier != 0) status_.system_identifier = system_identifier;
    status_.wal_lsn = wal;
    status_.receive_lsn = received;
    return before != status_.timeline;
  }

  /// Returns true when the status changed.
  bool on_failure(std::string error, std::chrono::system_clock::time_point now) {
    auto before = status_.status;
    successes_ = 0;
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
  int healthy_threshold_;
  int successes_ = 0;
  health_status status_;
};

} // namespace pgcm::detail
