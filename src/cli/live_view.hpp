#pragma once

// The live status view of `pgcm watch` and `pgcm demo`: draws the state
// store's snapshots (plus the primary's replication slots, read every few
// seconds) until q, Ctrl-C or a stop signal; or, with `once`, prints one
// snapshot.

#include <chrono>
#include <optional>
#include <string>

#include <pgcm/connection_manager.hpp>
#include <pgcm/state_store.hpp>

#include "cli_logging.hpp"
#include "cli_options.hpp"

namespace pgcm::cli {

struct live_view_options {
  std::string title = "pgcm watch";
  bool once = false;
  color_mode color = color_mode::automatic;
  /// Captured log lines for the bottom of the view (may be empty).
  log_tail log;
  /// How often the slots of the primary are read.
  std::chrono::milliseconds slots_interval{2000};
  /// With `once`: how long to wait for every node to be healthy first.
  std::chrono::milliseconds once_wait{0};
};

/// Runs the view. Returns the exit code: 0; with `once`, 1 if a node is
/// not healthy.
int run_live_view(connection_manager& mgr, state_store& store, const live_view_options& opts);

} // namespace pgcm::cli
