#pragma once

// Helpers shared by the integration tests: node configs for the test cluster,
// fast manager options, waiting for a condition, and server-side checks.

#include <chrono>
#include <functional>
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

/// The application_name node() uses.
const std::string& app_name();

/// Polls `pred` every 20 ms until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds{10});

/// Server connections of this process on `node` (by application_name),
/// optionally only in `state` (e.g. "active", "idle", "idle in transaction").
int server_connections(const std::string& node, const std::string& state = {});

/// Milliseconds since `start`.
long long ms_since(std::chrono::steady_clock::time_point start);

} // namespace pgcm::test
