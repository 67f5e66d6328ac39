#pragma once

// What routing needs, published by the manager for the blocking facade
// (issue 10): an immutable copy of the manager's routing table and each
// node's load, replaced (never changed) whenever either changes. A routed
// facade call resolves its route on the caller's thread with the manager's
// own rules (routing_table::pick) and then takes the per-node query path: no
// manager hop.
//
// What still goes through the manager: routes with `want_lsn` (a second
// statement on the primary after the first), routes with no eligible node in
// the snapshot (the manager answers no_eligible_node / split_brain, or makes
// a target::primary request wait up to `primary_wait`), and remote managers.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "pgcm/messages/protocol.hpp"
#include "routing_table.hpp"

namespace pgcm::detail {

struct routing_snapshot {
  routing_table table;
  /// In flight and waiting relative to pool.max, per node (what the manager balances on).
  std::unordered_map<std::string, double> load;

  /// What the manager's query_all / query_healthy address, as it would:
  /// every node in the order added, whether the manager counts it healthy
  /// (its last health status, not the routing table's facts) and its
  /// current supervisor. The facade fans out from this on the caller's
  /// thread (connection_manager.cpp fan_out).
  struct fan_node {
    std::string id;
    bool healthy = false;
    caf::strong_actor_ptr supervisor;
  };
  std::vector<fan_node> nodes;

  double load_of(const std::string& id) const {
    auto it = load.find(id);
    return it == load.end() ? 1e9 : it->second;
  }
};

/// Where the manager publishes its snapshot and the facade reads it.
class routing_board {
public:
  void publish(std::shared_ptr<const routing_snapshot> snap) {
    std::lock_guard<std::mutex> guard{mtx_};
    snap_ = std::move(snap);
  }
  /// Null until the manager published one, and after it ended.
  std::shared_ptr<const routing_snapshot> get() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return snap_;
  }
  /// The round-robin turn of the next routed call (ties between equally
  /// loaded nodes).
  std::uint64_t next_turn() { return turn_.fetch_add(1, std::memory_order_relaxed); }

private:
  mutable std::mutex mtx_;
  std::shared_ptr<const routing_snapshot> snap_;
  std::atomic<std::uint64_t> turn_{0};
};

} // namespace pgcm::detail

namespace pgcm {

/// spawn_manager (actors/cluster_manager.hpp) that also publishes its
/// routing snapshot on `board` (the local blocking facade's).
caf::expected<manager_api_actor> spawn_manager(caf::actor_system& sys, manager_options opts,
                                               std::shared_ptr<detail::routing_board> board);

} // namespace pgcm
