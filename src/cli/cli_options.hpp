#pragma once

// The command line of `pgcm`: subcommand, options, help texts.

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgcm/routing.hpp"

namespace pgcm::cli {

/// A bad command line: exit code 2, the message names the flag.
class usage_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

enum class query_target {
  all,     ///< --all (default): every node
  healthy, ///< --healthy: nodes whose health is healthy
  node,    ///< --node ID: one node
  routed,  ///< --target T: one node chosen by a route (--max-lag, --after)
};

enum class color_mode { automatic, always, never };

struct cli_options {
  /// health, query, watch, demo; empty with --help / --version alone.
  std::string command;
  bool help = false;
  bool version = false;

  // Where the nodes come from (health, query, watch).
  std::optional<std::string> config_path;
  /// `--node ID=CONNINFO` values, in order.
  std::vector<std::string> node_specs;

  std::string log_level; ///< empty: PGCM_LOG_LEVEL or warn
  std::optional<std::string> log_file;

  // health, query
  bool json = false;
  /// pgcm query --csv.
  bool csv = false;

  // query
  query_target target = query_target::all;
  std::string target_node;
  /// With query_target::routed.
  route routing;
  std::optional<std::chrono::milliseconds> timeout;
  std::string sql;
  std::vector<std::string> params;

  // Remote access: health, query and watch talk to a `pgcm serve` at
  // --remote HOST:PORT; serve listens on --listen HOST:PORT. Mutual TLS with
  // --tls-cert/--tls-key/--tls-ca (all three or none). serve --http HOST:PORT
  // serves HTTP(S): /metrics, /api/health, /api/events and the status page;
  // without --listen, --tls-cert/--tls-key alone give HTTPS without client
  // certificates.
  std::optional<std::string> remote;
  std::optional<std::string> listen;
  std::optional<std::string> http;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // serve, watch: --event-log FILE, rotated at --event-log-max bytes (10MB)
  std::optional<std::string> event_log;
  std::uint64_t event_log_max = 10 * 1024 * 1024;
  // watch, demo
  bool once = false;
  color_mode color = color_mode::automatic;
};

/// Parses argv. Throws usage_error.
cli_options parse_command_line(int argc, const char* const* argv);

/// The help text of `command` (empty: the overview).
std::string help_text(const std::string& command);

} // namespace pgcm::cli
