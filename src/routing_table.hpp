#pragma once

// The replication rules of a cluster, as a plain class (unit-tested without
// actors or servers): which node is primary, who is in conflict, how far each
// standby is behind, and where a routed query goes.
//
// Inputs are each node's probe facts (role, timeline, system identifier, WAL
// positions, last replayed commit time, health). From them, on every update:
// - System identifier: the most common known one is the cluster's (a tie goes
//   to the node added first); a node with another one is in conflict from its
//   first probe.
// - Primary: among healthy, non-conflicting nodes whose role is primary, the
//   one on the highest timeline. The others with role primary get a conflict
//   (split brain, older timeline). Two or more on the same highest timeline:
//   all of them are in conflict and the cluster is in split brain.
// - Lag of a standby (bytes) = primary's latest WAL position - the standby's
//   replay position, never negative; unknown while either is unknown. Both are
//   sampled by different probes, up to one probe interval apart: a standby
//   can look behind by what the primary wrote in between, or caught up while
//   the primary has written since.
// - Lag in time = 0 when the byte lag is 0 (an idle primary must not make a
//   caught-up standby look behind); otherwise the smaller of the age of the
//   standby's last replayed commit and the time since the byte lag was first
//   seen above 0 (so a write after a long idle period does not count the idle
//   time). Unknown when the byte lag is unknown.
// - Routing: eligible = healthy, role known and matching the target, not in
//   conflict, lag within the route's bounds (unknown lag is not within any
//   bound), and for `after` a replay position at or past the token (the
//   primary always qualifies). Among eligible nodes the least loaded wins,
//   ties round-robin. prefer_standby falls back to the primary; any uses
//   every eligible node, the primary included; standby never falls back.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pgcm/error.hpp"
#include "pgcm/routing.hpp"
#include "pgcm/types.hpp"

namespace pgcm::detail {

/// What a node's probes said last.
struct node_facts {
  bool healthy = false;
  node_role role = node_role::unknown;
  /// Primary: its current timeline; standby: the one it receives and replays. 0 = unknown.
  std::uint32_t timeline = 0;
  /// 0 = unknown.
  std::uint64_t system_identifier = 0;
  /// Primary: current WAL position; standby: last replayed position.
  std::optional<lsn> wal_lsn;
  /// Standby: last received position.
  std::optional<lsn> receive_lsn;
  /// Standby: commit time of the last replayed transaction.
  std::optional<std::chrono::system_clock::time_point> last_replay;
  /// When the probe took these facts.
  std::chrono::system_clock::time_point sampled_at{};
};

/// What the rules derive for a node.
struct node_view {
  std::optional<std::int64_t> lag_bytes;
  std::optional<std::chrono::milliseconds> lag;
  std::optional<std::string> conflict;
};

class routing_table {
public:
  /// Sets a node's facts (adding it if new) and recomputes every view.
  /// Returns the ids whose role, timeline or conflict changed, in the order
  /// the nodes were added (each worth a node_role event).
  std::vector<std::string> update(const std::string& id, const node_facts& facts);

  /// Whether routing by `other` picks and explains exactly as by this: the
  /// same nodes in the same order, the same primary, facts and derived
  /// views (only when the facts were sampled may differ).
  bool same_routing(const routing_table& other) const;

  /// Forgets a node; returns the ids whose conflict changed because of it.
  std::vector<std::string> remove(const std::string& id);

  /// The derived view of a node; nullptr if unknown.
  const node_view* view(const std::string& id) const;
  const node_facts* facts(const std::string& id) const;

  /// The node routed to as primary, if any.
  const std::optional<std::string>& primary() const { return primary_; }

  /// Two or more healthy primaries on the same highest timeline.
  bool split_brain() const { return split_brain_; }

  struct pick_result {
    /// The chosen node; empty when none is eligible (see code and message).
    std::optional<std::string> node;
    /// no_eligible_node or split_brain when node is empty.
    errc code = errc::no_eligible_node;
    /// Why no node was chosen: per node, why it was not eligible.
    std::string message;
  };

  /// Picks the node for `r`. `load(id)` is the node's load (in flight
  /// relative to pool size); the least loaded eligible node wins.
  pick_result pick(const route& r, const std::function<double(const std::string&)>& load);

  /// The same without changing the table: `turn` breaks ties round-robin
  /// (for a snapshot read by many threads, routing_snapshot.hpp).
  pick_result pick(const route& r, const std::function<double(const std::string&)>& load,
                   std::uint64_t turn) const;

  /// Why `id` is not eligible for `r` as a standby (or as the primary), or
  /// nullopt when it is eligible.
  std::optional<std::string> ineligible(const std::string& id, const route& r) const;

private:
  struct entry {
    std::string id;
    node_facts facts;
    node_view view;
    /// When the byte lag was first seen above 0 (reset when it is 0 again).
    std::optional<std::chrono::system_clock::time_point> behind_since;
  };

  entry* find(const std::string& id);
  const entry* find(const std::string& id) const;
  void recompute();

  std::vector<entry> nodes_;
  std::optional<std::string> primary_;
  bool split_brain_ = false;
  std::uint64_t round_robin_ = 0;
};

} // namespace pgcm::detail
