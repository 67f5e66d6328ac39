#pragma once

// The state store: a live copy of what a manager knows about its nodes
// (config, health, pool statistics, latency history), kept up to date by a
// subscriber actor and readable from any thread as snapshots. The spec's
// Zustand store; `pgcm watch` draws from it. Actor-based applications spawn
// the actor itself (pgcm/actors/state_store_actor.hpp).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pgcm/types.hpp"

namespace pgcm {

class connection_manager;

/// One finished health probe.
struct latency_sample {
  /// When the probe finished (the node's health.last_check).
  std::chrono::system_clock::time_point at{};
  /// Its round trip; 0 when it failed.
  microseconds latency{0};
  bool ok = false;
};

/// One node as the store sees it.
struct node_state {
  /// Id, config (no password), health and pool statistics.
  node_info info;
  /// From node_connected / node_disconnected events; nullopt until one came.
  std::optional<bool> connected;
  /// Why the node last lost its pool connections, if it did.
  std::optional<error_info> disconnect_error;
  /// The last probes, oldest first, at most state_store_options::history_size.
  /// Probes that finish faster than the refresh interval may be missed.
  std::vector<latency_sample> history;
};

/// Everything the store holds, at one moment.
struct cluster_snapshot {
  /// Increases with every change (0: nothing received yet).
  std::uint64_t version = 0;
  /// In the order the manager added them.
  std::vector<node_state> nodes;
  /// False once the manager is gone (shut down, or its connection lost).
  bool manager_alive = true;
  /// When the last change was applied.
  std::chrono::system_clock::time_point updated{};

  /// The node with that id, or null.
  const node_state* find(const std::string& id) const;
  /// The first healthy node whose role is primary, or null.
  const node_state* primary() const;
  /// Nodes whose status is healthy.
  std::size_t healthy_count() const;
};

struct state_store_options {
  /// How often the store asks the manager for fresh numbers, besides its
  /// events (latency and failure counts are not sent as events). 0: events only.
  milliseconds refresh_interval{1000};
  /// Probes kept per node for the latency history.
  std::size_t history_size = 60;
};

/// A state store attached to a connection_manager (local or remote).
///
/// Thread-safe. Create it before manager.initialize() to see every event
/// from the start; created later it starts from the manager's current nodes.
/// It must not outlive the manager.
class state_store {
public:
  explicit state_store(connection_manager& mgr, state_store_options opts = {});
  /// Stops the store's actor; the change callback is not running when this returns.
  ~state_store();
  state_store(const state_store&) = delete;
  state_store& operator=(const state_store&) = delete;

  /// A copy of the current state.
  cluster_snapshot snapshot() const;

  /// The current version (cheaper than snapshot()).
  std::uint64_t version() const;

  /// Blocks until the version differs from `since` or `timeout` passed;
  /// returns the version then.
  std::uint64_t wait_for_change(std::uint64_t since, milliseconds timeout) const;

  /// Asks the manager for fresh numbers now and waits until they are
  /// applied, at most `timeout`. Returns false if that did not happen in time
  /// or the manager is gone.
  bool refresh(milliseconds timeout = milliseconds{3000});

  /// Calls `callback` after every change, on a pgcm thread, one call at a
  /// time; keep it short (e.g. wake your own thread). Replaces the previous
  /// callback; an empty one removes it. When this returns, the previous
  /// callback is not running. Must not be called from inside the callback.
  void on_change(std::function<void(std::uint64_t version)> callback);

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace pgcm
