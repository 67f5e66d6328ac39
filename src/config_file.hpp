#pragma once

// pgcm's config file: manager options and nodes, hand-editable TOML (parsed
// by toml++, so any TOML syntax is accepted: inline tables, dotted keys,
// multi-line strings...). Parsing is pure (no file system, no environment):
// any input either parses or throws config_error naming line and field.
// Resolving (password references, relative paths, validation) is a second
// step. The format is documented in docs/config-file.md.
//
//   # comment
//   [manager]
//   health_check_interval = "5s"   # durations: "250ms", "5s", "2m", "1h", "1m30s", or ms
//   unhealthy_threshold = 3
//
//   [node.primary]
//   host = "db1.example.com"
//   port = 5432
//   database = "app"
//   user = "monitor"
//   password_env = "PG_PASSWORD"   # or: passfile = "/home/me/.pgpass"
//   ssl.enabled = true
//   ssl.ca = "/etc/ssl/pg-ca.crt"
//   pool.max = 20
//
//   [node.replica-1.pool]          # a field group as a section of its own
//   min = 2

#include <cstddef>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "password_source.hpp"
#include "pgcm/types.hpp"

namespace pgcm {

/// A problem in a config file. what() reads "FILE:LINE: FIELD: MESSAGE"
/// (LINE left out when the problem concerns the whole file, FIELD when there
/// is none). Never contains a password.
class config_error : public std::runtime_error {
public:
  config_error(std::string file, std::size_t line, std::string field, std::string message);

  const std::string& file() const noexcept { return file_; }
  /// 1-based; 0 for the file as a whole.
  std::size_t line() const noexcept { return line_; }
  /// The field ("pool.max", "health_check_interval", a section name), or empty.
  const std::string& field() const noexcept { return field_; }
  /// The message without file, line and field.
  const std::string& message() const noexcept { return message_; }

private:
  std::string file_;
  std::size_t line_;
  std::string field_;
  std::string message_;
};

/// One `[node.ID]` section.
struct config_node {
  std::string id;
  /// Every field but the password (see `password`).
  node_config config;
  password_source password;
  /// Line of the section header that created the node.
  std::size_t line = 0;
  /// Line each field was set on ("host", "ssl.ca", "password_env", ...).
  std::map<std::string, std::size_t> lines;
};

/// A parsed config file.
struct config_file {
  std::string path;
  manager_options manager;
  /// Line each manager option was set on.
  std::map<std::string, std::size_t> manager_lines;
  /// In file order.
  std::vector<config_node> nodes;
};

/// Parses `text`; `path` is used in messages and to anchor relative paths
/// (`ssl.ca`, `passfile`) at the file's directory. Throws config_error only.
config_file parse_config(std::string_view text, const std::string& path);

/// Reads and parses the file at `path`. Throws config_error (line 0 when the
/// file cannot be read).
config_file read_config_file(const std::string& path);

/// Resolves password references and validates the manager options and every
/// node (validate() in pgcm/types.hpp, which also checks that `ssl.ca` is
/// readable). Returns the nodes in file order, ready for initialize().
/// Throws config_error naming the line and field of the problem.
std::vector<std::pair<std::string, node_config>> resolve_nodes(const config_file& cfg,
                                                               const env_lookup& env);

/// Parses a duration as config files write it: an integer of milliseconds
/// ("500") or <integer><unit> parts, units ms, s, m (or min), h ("250ms",
/// "5s", "1m30s"). nullopt when invalid or above 1e9 ms (about 11 days).
std::optional<milliseconds> parse_duration(std::string_view text);

/// Whether `id` is a valid node id: 1 to 63 characters of [A-Za-z0-9_.-].
/// (A dot needs quoting in a section header: [node."a.b"].)
bool valid_node_id(std::string_view id);

} // namespace pgcm
