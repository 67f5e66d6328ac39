#include "manager_source.hpp"

#include <set>

#include "config_file.hpp"
#include "conninfo.hpp"

namespace pgcm::cli {

remote_endpoint parse_endpoint(const std::string& flag, const std::string& value,
                               const cli_options& opts) {
  remote_endpoint ep;
  std::string host;
  std::string port;
  if (!value.empty() && value.front() == '[') {
    auto close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':')
      throw usage_error{flag + " " + value + ": expected [IPV6]:PORT"};
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
  } else {
    auto colon = value.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw usage_error{flag + " " + value + ": expected HOST:PORT"};
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535)
    throw usage_error{flag + " " + value + ": invalid port \"" + port + "\""};
  ep.host = host;
  ep.port = static_cast<std::uint16_t>(std::stoul(port));
  ep.tls = tls_options{opts.tls_cert, opts.tls_key, opts.tls_ca};
  return ep;
}

cluster_spec load_cluster_spec(const cli_options& opts, const env_lookup& env) {
  cluster_spec spec;
  if (opts.remote) {
    spec.remote = parse_endpoint("--remote", *opts.remote, opts);
    if (spec.remote->port == 0)
      throw usage_error{"--remote " + *opts.remote + ": port 0 is not a server's port"};
    return spec;
  }
  std::set<std::string> ids;
  auto config_path = opts.config_path;
  if (!config_path && opts.node_specs.empty())
    if (auto v = env("PGCM_CONFIG"); v && !v->empty()) config_path = *v;
  if (config_path) {
    auto file = read_config_file(*config_path);
    spec.options = file.manager;
    spec.nodes = resolve_nodes(file, env);
    for (auto& n : spec.nodes)
      ids.insert(n.first);
  }
  for (auto& arg : opts.node_specs) {
    auto eq = arg.find('=');
    auto id = arg.substr(0, eq);
    auto conninfo = arg.substr(eq + 1);
    if (!valid_node_id(id))
      throw usage_error{"--node " + arg.substr(0, std::min<std::size_t>(eq, 80)) +
                        "=...: invalid node id \"" + id +
                        "\" (1 to 63 characters of A-Z a-z 0-9 _ . -)"};
    auto where = "--node " + id + ": ";
    if (!ids.insert(id).second)
      throw usage_error{where + "a node with id \"" + id + "\" is defined twice" +
                        (config_path ? " (also in " + *config_path + ")" : std::string{})};
    conninfo_node parsed;
    try {
      parsed = parse_conninfo(conninfo, env);
      parsed.config.password = resolve_password(parsed.password, parsed.config, env);
    } catch (const conninfo_error& e) {
      throw usage_error{where + e.what()};
    } catch (const password_error& e) {
      throw usage_error{where + e.what()};
    }
    for (auto& note : parsed.notes)
      spec.warnings.push_back(where + note);
    if (auto problem = validate(id, parsed.config)) throw usage_error{where + problem->message};
    spec.nodes.emplace_back(id, std::move(parsed.config));
  }
  if (spec.nodes.empty())
    throw usage_error{config_path ? "no nodes: " + *config_path +
                                        " defines no [node.ID] section and no --node was given"
                                  : "no nodes: give --config FILE or --node ID=CONNINFO (see "
                                    "pgcm --help)"};
  return spec;
}

std::unique_ptr<connection_manager> make_manager(const cluster_spec& spec) {
  if (spec.remote) return std::make_unique<connection_manager>(*spec.remote, spec.options);
  return std::make_unique<connection_manager>(spec.options);
}

void start_manager(connection_manager& mgr, const cluster_spec& spec) {
  if (!mgr.is_remote()) // a server's nodes are initialized already
    mgr.initialize(spec.nodes);
}

} // namespace pgcm::cli
