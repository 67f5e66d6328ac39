#pragma once

// What `pgcm watch` draws, as a pure function of a model: testable without a
// terminal, and the same text for the full-screen view and `--once`.
//
//  pgcm watch · 3 nodes · 3 healthy · primary node0                  14:03:22  q: quit
//
//  ● node0  primary  healthy   127.0.0.1:5432/app  checked now
//    latency  0.31 ms  ▂▃▂▁▁▂▇▂▁▂   failures 0   connected
//    pool     [██▒▒······] 4/10  busy 2  idle 2  waiting 0   ok 1234  failed 0  timed out 0
//    last error  -
//  ...
//  Replication slots on node0
//    slot        type      active  client  state      restart_lsn  retained  replay lag

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <pgcm/state_store.hpp>

namespace pgcm::cli {

/// One row of pg_replication_slots (joined with pg_stat_replication), as text.
struct slot_row {
  std::string name;
  std::string type;
  bool active = false;
  std::string client; ///< application_name of the walsender's client
  std::string state;  ///< e.g. streaming
  std::string restart_lsn;
  std::string retained; ///< WAL kept for the slot, e.g. "16 kB"
  std::string replay_lag;
};

/// The primary's slots as last fetched.
struct slots_info {
  std::string node_id; ///< where they were read; empty: no healthy primary
  std::vector<slot_row> rows;
  std::optional<std::string> error;
  bool fetched = false;
};

struct watch_model {
  std::string title = "pgcm watch";
  cluster_snapshot snapshot;
  slots_info slots;
  /// The last log lines (oldest first).
  std::vector<std::string> log_lines;
  std::chrono::system_clock::time_point now{};
};

struct view_style {
  int width = 100;
  /// Lines available; 0: as many as needed (--once).
  int height = 0;
  bool color = false;
  /// Block characters and bullets; false: ASCII only.
  bool unicode = true;
  /// Show the key help in the title bar.
  bool interactive = true;
};

/// The lines of the view (no trailing newlines), each at most `width`
/// columns wide; with a height, exactly `height` lines.
std::vector<std::string> render_watch(const watch_model& m, const view_style& style);

/// The sparkline of a latency history: one character per probe, scaled
/// between the fastest and slowest successful probe; failed probes as '×'
/// ('x'). At most `width` characters (the newest).
std::string sparkline(const std::vector<latency_sample>& history, std::size_t width, bool unicode);

} // namespace pgcm::cli
