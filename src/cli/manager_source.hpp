#pragma once

// Where the pgcm command gets its connection_manager from. Today: a manager
// in this process, built from --config FILE and --node ID=CONNINFO, that
// connects to PostgreSQL itself. (`--remote HOST:PORT` will be a second way
// to open one: attach to a `pgcm serve`; the commands only see the
// connection_manager either way.)

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pgcm/connection_manager.hpp>

#include "cli_options.hpp"
#include "password_source.hpp"

namespace pgcm::cli {

/// Manager options and nodes, from the config file and --node flags.
struct cluster_spec {
  manager_options options;
  std::vector<std::pair<std::string, node_config>> nodes;
  /// For the user (e.g. ignored connection keywords), printed on stderr.
  std::vector<std::string> warnings;
  /// --remote: attach to a `pgcm serve` instead (then `nodes` is empty).
  std::optional<remote_endpoint> remote;
};

/// Parses HOST:PORT ([V6]:PORT for IPv6) of --remote / --listen, with the TLS
/// flags. Throws usage_error naming `flag`.
remote_endpoint parse_endpoint(const std::string& flag, const std::string& value,
                               const cli_options& opts);

/// Builds the spec. Throws config_error (bad file) or usage_error (bad
/// --node, no nodes at all, a duplicate id); both mean exit code 2.
/// $PGCM_CONFIG stands in for --config when neither --config nor --node is given.
cluster_spec load_cluster_spec(const cli_options& opts, const env_lookup& env);

/// Makes the manager for `spec` (not yet started: register stop hooks and
/// state stores on it first, then call start_manager). Throws pgcm::error.
std::unique_ptr<connection_manager> make_manager(const cluster_spec& spec);

/// Starts the manager: initializes it with the spec's nodes, which returns
/// once every node connected or failed and was probed once. Throws pgcm::error.
void start_manager(connection_manager& mgr, const cluster_spec& spec);

} // namespace pgcm::cli
