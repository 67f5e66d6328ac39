#pragma once

// Helpers shared by the integration tests: node configs for the test cluster,
// fast manager options, waiting for a condition, server-side checks, stopping
// a node for a scope, and recording the manager's events.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pgcm/pgcm.hpp>

#include "cluster.hpp"

namespace pgcm::test {

/// Config for cluster node `name` ("node0" is the primary), with an
/// application_name unique to this test process so that server-side counts
/// see only our connections.
node_config node(const std::string& name);

/// {"node0", cfg}, {"node1", cfg}, {"node2", cfg}.
std::vector<std::pair<std::string, node_config>> all_nodes();

/// Options with short intervals so that health transitions happen quickly.
manager_options fast_options();

/// Whether facade queries may run on leases here (PGCM_INLINE=0 turns
/// inline execution, and with it leasing, off).
inline bool leasing_on() {
  return fast_options().effective_inline_execution();
}

/// A manager of node0 alone with `pool`, initialized.
std::unique_ptr<connection_manager> node0_manager(pool_config pool = pool_config{},
                                                  manager_options opts = fast_options());

/// The application_name node() uses.
const std::string& app_name();

/// Polls `pred` every 20 ms until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds{10});

/// Server connections of this process on `node` (by application_name),
/// optionally only in `state` (e.g. "active", "idle", "idle in transaction").
int server_connections(const std::string& node, const std::string& state = {});

/// Whether `node` answers `SELECT 1` through `mgr`: false on a pgcm error,
/// whose message then goes to `last_error` if given.
bool answers(connection_manager& mgr, const std::string& node,
             std::optional<std::chrono::milliseconds> timeout = std::nullopt,
             std::string* last_error = nullptr);

/// Milliseconds since `start`.
long long ms_since(std::chrono::steady_clock::time_point start);

/// Stops a cluster node and starts it again when it goes out of scope (also
/// when a check throws), so that later tests find the cluster whole.
class stopped_node {
public:
  explicit stopped_node(std::string name);
  stopped_node(const stopped_node&) = delete;
  stopped_node& operator=(const stopped_node&) = delete;
  ~stopped_node();
  /// Starts the node again now (waits until it accepts connections).
  void start();

private:
  std::string name_;
  bool stopped_ = true;
};

/// Collects events from the manager's callback thread. Subscribe it through a
/// shared_ptr: `mgr.on_any([rec](const node_event& e) { (*rec)(e); })`.
class event_recorder {
public:
  void operator()(const node_event& ev);
  /// Every event, in arrival order.
  std::vector<node_event> all() const;
  /// Every event of `node`, in arrival order.
  std::vector<node_event> of(const std::string& node) const;
  /// Events of `node`, of `type`, in arrival order.
  std::vector<node_event> of(const std::string& node, event type) const;
  /// How many events of `node`, of `type`.
  std::size_t count(const std::string& node, event type) const;
  /// The health states `node` went through, as its node_health events said.
  std::vector<health_state> states(const std::string& node) const;
  /// The health reports of `node`'s node_health events that carry one.
  std::vector<health_status> health(const std::string& node) const;

private:
  mutable std::mutex mtx_;
  std::vector<node_event> events_;
};

} // namespace pgcm::test
